"""split stage: data/interim/data.csv -> data_strong.csv and data_normal.csv (by intensity)."""

from pathlib import Path

from speech_emotion import atomic, labels

TABLE = Path("data/interim/data.csv")
OUTPUTS = {"strong": Path("data/interim/data_strong.csv"),
           "normal": Path("data/interim/data_normal.csv")}


def main() -> None:
    parts = labels.split_by_intensity(labels.read_table(TABLE))
    for name, part in parts.items():
        atomic.write_csv(OUTPUTS[name], part)
        print(f"split: {name}: {len(part)} utterances, "
              f"{part['emotion_name'].nunique()} emotions -> {OUTPUTS[name]}")


if __name__ == "__main__":
    main()
