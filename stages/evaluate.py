"""evaluate@<model>-<subset> (and evaluate_head@<head>-<subset>) stage: score
models/<model>-<subset>/fold<k>.pt on each fold's test actors -> metrics/<model>-<subset>.json,
plots/confusion/<model>-<subset>.json, data/predictions/<model>-<subset>.csv (each test
utterance's class probabilities: what fuse@ averages)."""

import argparse

from speech_emotion import atomic, fusion, inputs, labels, machine, params, stage
from speech_emotion.evaluate import evaluate_cell
from speech_emotion.paths import DATA_CSV, confusion_file, metrics_file, model_dir, predictions_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("subset")
    args = ap.parse_args()
    p = params.load()                   # before any work
    table = labels.read_table(DATA_CSV)
    result = evaluate_cell(model_dir(args.model, args.subset), args.subset, table,
                           inputs.read(args.model, table, p), p)   # features.h5 or encoded.h5
    # what ran it (CPU, kernels, versions, pins): dvc exp show can then explain a difference
    atomic.write_json(metrics_file(args.model, args.subset),
                      {**result.metrics, "machine": machine.describe()})
    atomic.write_json(confusion_file(args.model, args.subset), result.confusion)
    fusion.write_predictions(predictions_file(args.model, args.subset), result.predictions)
    m = result.metrics
    print(f"{args.model}-{args.subset}: UA {m['ua']:.4f} WA {m['wa']:.4f} "
          f"macro-F1 {m['macro_f1']:.4f} over {m['n_folds']} fold(s), "
          f"{m['n_utterances']} test utterances")


if __name__ == "__main__":
    stage.run(main)
