"""A cell's folds one after another against side by side (`train.workers`), in one run.

    python benchmarks/fold_workers.py                         # 6 folds of cnn, 2 epochs each
    python benchmarks/fold_workers.py --model cnn_transformer --folds 4 --epochs 3
    python benchmarks/fold_workers.py -S train.ensemble=2     # any params override

Random features of the default shape (features.n_mels x frames of features.duration_s),
`--rows` training utterances a fold, `--epochs` epochs each, with the params.yaml recipe.
`train_jobs` runs the same jobs twice: `train.workers: 1` (in this process, one thread:
what every train stage did before) and then the given workers (0: one per core). Prints
both wall times and their ratio, and checks that both ways give the same weights byte for
byte. Absolute times depend on the machine and its load; the ratio measured in one run
does not, much.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import yaml

from speech_emotion import features, params, training
from speech_emotion.pool import default_workers
from speech_emotion.ravdess import EMOTION_NAMES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--folds", type=int, default=6, help="jobs (folds x members)")
    ap.add_argument("--rows", type=int, default=600, help="training utterances a fold")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="the side-by-side way (0: cores)")
    ap.add_argument("-S", dest="overrides", action="append", default=[],
                    help="params override key=value (YAML value)")
    args = ap.parse_args()
    torch.set_num_threads(1)                   # what train.threads: 1 sets in a stage
    overrides = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    p = params.load(overrides={**overrides, "train.epochs": args.epochs, "train.device": "cpu",
                               "train.monitor": "none"})
    shape = (features.n_bins(p.features), features.n_frames(p.features))
    rng = np.random.default_rng(0)
    jobs = []
    for k in range(args.folds):
        data = training.FoldData(
            rng.normal(-40, 10, (args.rows,) + shape).astype(np.float32),
            rng.integers(0, len(EMOTION_NAMES), args.rows),
            np.zeros((0,) + shape, np.float32), np.zeros(0, np.int64),
            np.arange(args.rows) % 16, np.zeros(0, np.int64))
        jobs.append(training.Job(fold=None, member=0, run=f"fold{k + 1}", data=data,
                                 seed=k + 1))
    workers = training.job_workers(dataclasses.replace(p.train, workers=args.workers),
                                   len(jobs))
    print(f"{args.model}: {len(jobs)} jobs of {args.rows} utterances x {args.epochs} epochs "
          f"({shape[0]} x {shape[1]} features); {default_workers()} cores")
    seconds, weights = {}, {}
    for label, n in (("one after another (train.workers: 1)", 1),
                     (f"side by side ({workers} processes)", args.workers)):
        train = dataclasses.replace(p.train, workers=n)
        start = time.perf_counter()
        results = list(training.train_jobs(args.model, p.section(args.model), train, jobs,
                                           list(EMOTION_NAMES), dataclasses.asdict(p.features),
                                           on_epoch=None, progress=True))
        seconds[label] = time.perf_counter() - start
        weights[label] = [r["state_dict"] for r in results]
        print(f"{label:>40}: {seconds[label]:7.1f} s")
    one, two = weights.values()
    same = all(torch.equal(a[key], b[key]) for a, b in zip(one, two, strict=True) for key in a)
    first, second = seconds.values()
    print(f"ratio: {first / second:.2f}x as fast side by side; the same weights: {same}")


if __name__ == "__main__":
    main()
