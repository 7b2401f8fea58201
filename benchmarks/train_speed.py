"""Seconds per training epoch of each classifier, default params, on this machine.

    python benchmarks/train_speed.py                      # 1080 utterances: fold 1 of `all`
    python benchmarks/train_speed.py --rows 504 --threads 1 -S train.batch_size=64
    python benchmarks/train_speed.py --threads 1 --project 60   # + a 6-fold run of 60 epochs

Random features of the default shape (features.n_mels x frames of features.duration_s);
one epoch with the params.yaml recipe (augmentation included) plus validation on 120
utterances. Prints parameter counts and seconds per epoch, and each model's time as a
ratio to the base `cnn` measured in the same run (absolute times depend on the machine
and on what else runs on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from speech_emotion import features, models, params, training
from speech_emotion.ravdess import EMOTION_NAMES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1080, help="training utterances per epoch")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--project", type=int, metavar="EPOCHS",
                    help="also print what 6 folds of EPOCHS epochs each take at this speed")
    ap.add_argument("-S", dest="overrides", action="append", default=[],
                    help="params override key=value (YAML value), e.g. -S cnn.channels=[16,32]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import yaml
    overrides = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    p = params.load(ROOT / "params.yaml", overrides={**overrides, "train.patience": 99,
                                                     "train.epochs": args.epochs + 1})
    shape = (features.n_bins(p.features), features.n_frames(p.features))
    rng = np.random.default_rng(0)
    data = training.FoldData(
        rng.normal(-40, 10, (args.rows,) + shape).astype(np.float32),
        rng.integers(0, len(EMOTION_NAMES), args.rows),
        rng.normal(-40, 10, (120,) + shape).astype(np.float32),
        rng.integers(0, len(EMOTION_NAMES), 120))
    print(f"{args.rows} utterances x {shape[0]} bins x {shape[1]} frames, batch "
          f"{p.train.batch_size}, {torch.get_num_threads()} torch thread(s)")
    seconds = {}
    for name in models.MODELS:
        start = time.perf_counter()
        result = training.train_fold(name, p.section(name), p.train, data,
                                     list(EMOTION_NAMES), seed=0,
                                     feature_params=dataclasses.asdict(p.features),
                                     progress=False)
        seconds[name] = float(np.mean([h["seconds"] for h in result["history"][1:]]))
        print(f"{name:>16}: {result['parameters']:>8,} parameters, "
              f"{seconds[name]:6.2f} s/epoch ({time.perf_counter() - start:.0f} s in all)")
    for name, value in seconds.items():
        print(f"{name:>16}: {value / seconds['cnn']:.2f} x cnn")
    if args.project:
        for name, value in seconds.items():
            print(f"{name:>16}: 6 folds x {args.project} epochs of {args.rows} utterances: "
                  f"{6 * args.project * value / 60:.1f} min (projected from the epochs above)")


if __name__ == "__main__":
    main()
