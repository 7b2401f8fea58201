"""features stage: data/interim/data.csv + data/raw/ravdess/ -> data/processed/features.h5.

Every utterance of data.csv, in its order: read, mix down, resample, clip to a fixed
length, log-mel or MFCC (params.yaml `features`); written to the HDF5 store atomically.
"""

from speech_emotion import features, labels, params, stage, store
from speech_emotion.paths import DATA_CSV, FEATURES, RAW


def main() -> None:
    feature_params = params.load().features
    table = labels.read_table(DATA_CSV)
    try:
        matrix = features.extract_files([RAW / path for path in table["path"]], feature_params)
    except features.AudioError as err:  # names the file; no features.h5 is written
        raise SystemExit(f"features: {err}") from None
    store.write(FEATURES, table, matrix, feature_params)
    print(f"{FEATURES}: {matrix.shape[0]} utterances x {matrix.shape[1]} bins x "
          f"{matrix.shape[2]} frames ({feature_params.kind})")


if __name__ == "__main__":
    stage.run(main)
