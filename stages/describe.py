"""describe: data/interim/data.csv + the audio -> reports/figures/*.png, reports/summary.json.

The descriptive analysis of the corpus (speech_emotion.describe): counts, durations,
silences, pitch and loudness, mean and example log-mel spectrograms.
"""

from speech_emotion import atomic, describe, labels, params, stage
from speech_emotion.paths import DATA_CSV, FIGURES, RAW, SUMMARY


def main() -> None:
    p = params.load()
    table = describe.check_table(labels.read_table(DATA_CSV), str(DATA_CSV))  # before any output
    with atomic.atomic_dir(FIGURES) as figures:
        summary = describe.run(table, RAW, p.describe, p.features, figures)
    atomic.write_json(SUMMARY, summary)


if __name__ == "__main__":
    stage.run(main)
