"""split stage: data/interim/data.csv -> data_strong.csv and data_normal.csv (by intensity)."""

from speech_emotion import atomic, labels, params, stage
from speech_emotion.paths import DATA_CSV, intensity_csv


def main() -> None:
    params.load()       # reads no param; a bad params.yaml is refused before any work
    parts = labels.split_by_intensity(labels.read_table(DATA_CSV))
    for name, part in parts.items():
        atomic.write_csv(intensity_csv(name), part)
        print(f"split: {name}: {len(part)} utterances, "
              f"{part['emotion_name'].nunique()} emotions -> {intensity_csv(name)}")


if __name__ == "__main__":
    stage.run(main)
