"""fuse@<head>+<model>-<subset> stage: a head's and a log-mel model's test predictions
(data/predictions/<cell>.csv of their evaluate stages) averaged with fusion.head_weight ->
metrics/<head>+<model>-<subset>.json, plots/confusion/<head>+<model>-<subset>.json and the
fused data/predictions/<head>+<model>-<subset>.csv."""

import argparse

from speech_emotion import atomic, fusion, metrics, params, stage
from speech_emotion.paths import confusion_file, fused, metrics_file, predictions_file
from speech_emotion.ravdess import SUBSETS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("head")
    ap.add_argument("model")
    ap.add_argument("subset")
    args = ap.parse_args()
    p = params.load()                   # before any work
    labels = list(SUBSETS[args.subset])
    head, model = (fusion.read_predictions(predictions_file(m, args.subset), labels)
                   for m in (args.head, args.model))
    predictions = fusion.fuse(head, model, labels, p.fusion.head_weight)
    # speaker-adaptive when either member standardised each test actor by its own audio
    protocols = [fusion.read_protocol(metrics_file(m, args.subset))
                 for m in (args.head, args.model)]
    scores = {**metrics.summarise(predictions, labels, args.subset),
              "protocol": fusion.protocol(*protocols), "head_weight": p.fusion.head_weight}
    name = fused(args.head, args.model)
    atomic.write_json(metrics_file(name, args.subset), scores)
    atomic.write_json(confusion_file(name, args.subset), metrics.confusion_records(predictions))
    fusion.write_predictions(predictions_file(name, args.subset), predictions)
    print(f"{name}-{args.subset}: UA {scores['ua']:.4f} WA {scores['wa']:.4f} macro-F1 "
          f"{scores['macro_f1']:.4f} ({args.head} weighted {p.fusion.head_weight}, "
          f"{scores['protocol']})")


if __name__ == "__main__":
    stage.run(main)
