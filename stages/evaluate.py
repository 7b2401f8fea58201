"""evaluate@<model>-<subset> stage: score models/<model>-<subset>/fold<k>.pt on each fold's
test actors -> metrics/<model>-<subset>.json, plots/confusion/<model>-<subset>.json."""

import argparse
from pathlib import Path

from speech_emotion import atomic, labels, params, store
from speech_emotion.evaluate import confusion_path, evaluate_cell, metrics_path

DATA = Path("data/interim/data.csv")
FEATURES = Path("data/processed/features.h5")
MODELS = Path("models")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("subset")
    args = ap.parse_args()
    result = evaluate_cell(MODELS / f"{args.model}-{args.subset}", args.subset,
                           labels.read_table(DATA), store.read(FEATURES), params.load())
    atomic.write_json(metrics_path(args.model, args.subset), result.metrics)
    atomic.write_json(confusion_path(args.model, args.subset), result.confusion)
    m = result.metrics
    print(f"{args.model}-{args.subset}: UA {m['ua']:.4f} WA {m['wa']:.4f} "
          f"macro-F1 {m['macro_f1']:.4f} over {m['n_folds']} fold(s), "
          f"{m['n_utterances']} test utterances")


if __name__ == "__main__":
    main()
