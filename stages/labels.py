"""labels stage: data/raw/ravdess/ -> data/interim/data.csv (one row per utterance).

Validates every file name and every audio file; one error lists every offending file.
"""

import sys

from speech_emotion import atomic, labels, params, stage
from speech_emotion.paths import DATA_CSV, RAW


def main() -> None:
    params.load()       # reads no param; a bad params.yaml is refused before any work
    try:
        table = labels.build_table(RAW, progress=True)
    except labels.LabelsError as err:
        sys.exit(f"labels: {err}")
    atomic.write_csv(DATA_CSV, table)
    stereo = table.loc[table["channels"] > 1, "path"].tolist()
    print(f"labels: {len(table)} utterances of {table['actor'].nunique()} actors -> {DATA_CSV}")
    print(f"labels: {len(stereo)} stereo file(s): {', '.join(stereo) or 'none'}")
    for note in labels.coverage(table):     # runs on what is there, and says what is not
        print(f"labels: not the full corpus: {note}")
    for group in labels.twins(table):
        print(f"labels: identical audio (twins): {', '.join(group)}")


if __name__ == "__main__":
    stage.run(main)
