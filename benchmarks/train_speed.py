"""Seconds per training epoch of each classifier, default params, on this machine; with
`--against REV`, side by side with the code of a git revision, and the ratio.

    python benchmarks/train_speed.py                        # this tree: fold 1 of `all`
    python benchmarks/train_speed.py --against 765dda9      # and that revision, alternately
    python benchmarks/train_speed.py --rows 300 --threads 2 -S train.batch_size=32
    python benchmarks/train_speed.py --project 60           # + a 6-fold run of 60 epochs

Random features of the default shape (features.n_mels x frames of features.duration_s);
`--epochs` timed epochs (after one warm-up) with the params.yaml recipe. Each measurement
runs in a fresh process; with `--against`, the revision (checked out into a temporary git
worktree, its own params.yaml) and this tree take turns `--repeat` times, so both see the
same machine load, and the ratio is of their medians. Absolute times depend on the machine
and on what else runs on it; the ratios measured in one run do not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(root: Path, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per epoch of each model, with the package and params.yaml of `root`."""
    import dataclasses
    import time

    import numpy as np
    import torch
    import yaml

    from speech_emotion import features, models, params, training
    from speech_emotion.ravdess import EMOTION_NAMES

    torch.set_num_threads(args.threads)
    overrides = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    p = params.load(root / "params.yaml", overrides={**overrides, "train.patience": 99,
                                                     "train.epochs": args.epochs + 1})
    rng = np.random.default_rng(0)
    layers, dim = 7, 512                               # Whisper base's hidden states

    def fold_data(shape: tuple[int, int]):
        return training.FoldData(
            rng.normal(-40, 10, (args.rows,) + shape).astype(np.float32),
            rng.integers(0, len(EMOTION_NAMES), args.rows),
            rng.normal(-40, 10, (0,) + shape).astype(np.float32),      # monitor: none
            rng.integers(0, len(EMOTION_NAMES), 0),
            # 20 training actors (train.speaker_norm), where this tree's FoldData takes them
            **({"speakers_train": np.arange(args.rows) % 20, "speakers_val": np.zeros(0, int)}
               if "speakers_train" in training.FoldData.__dataclass_fields__ else {}))

    # each model's input shape: log-mel (bins, frames), a pooled head's (2D, L), a frame
    # head's (L*D, encode.grid)
    grid_heads = getattr(params, "GRID_HEADS", ())
    shapes = {name: ((layers * dim, p.encode.grid) if name in grid_heads
                     else (2 * dim, layers) if name in params.HEAD_MODELS
                     else (features.n_bins(p.features), features.n_frames(p.features)))
              for name in models.MODELS}
    seconds = {}
    for name in models.MODELS:
        start = time.perf_counter()
        result = training.train_fold(name, p.section(name), p.train, fold_data(shapes[name]),
                                     list(EMOTION_NAMES), seed=0,
                                     feature_params={**dataclasses.asdict(p.features),
                                                     "n_states": layers},
                                     progress=False)
        seconds[name] = float(np.mean([h["seconds"] for h in result["history"][1:]]))
        print(f"  {name:>16}: {result['parameters']:>8,} parameters, {seconds[name]:6.2f} "
              f"s/epoch ({time.perf_counter() - start:.0f} s in all)", file=sys.stderr)
    return seconds


def measure(root: Path, args: argparse.Namespace) -> dict[str, float]:
    """One measurement of `root`'s code in a fresh process (its src first on the path)."""
    command = [sys.executable, __file__, "--worker", str(root), "--rows", str(args.rows),
               "--epochs", str(args.epochs), "--threads", str(args.threads)]
    for override in args.overrides:
        command += ["-S", override]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1200, help="training utterances per epoch")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--against", metavar="REV", help="also time this git revision's code")
    ap.add_argument("--repeat", type=int, default=2, help="turns of each tree (with --against)")
    ap.add_argument("--project", type=int, metavar="EPOCHS",
                    help="also print what 6 folds of EPOCHS epochs each take at this speed")
    ap.add_argument("-S", dest="overrides", action="append", default=[],
                    help="params override key=value (YAML value), e.g. -S cnn.channels=[16,32]")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    print(f"{args.rows} utterances a fold, {args.epochs} timed epochs, "
          f"{args.threads} torch thread(s)")
    if not args.against:
        seconds = measure(ROOT, args)
        for name, value in seconds.items():
            print(f"{name:>16}: {value:6.2f} s/epoch, {value / seconds['cnn']:.2f} x cnn")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            other = Path(tmp) / "tree"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against],
                           cwd=ROOT, check=True)
            try:
                runs: dict[str, list[dict[str, float]]] = {"this tree": [], args.against: []}
                for turn in range(args.repeat):
                    for label, root in ((args.against, other), ("this tree", ROOT)):
                        print(f"turn {turn + 1}: {label}", file=sys.stderr)
                        runs[label].append(measure(root, args))
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT,
                               check=False)
        seconds = {label: {name: statistics.median(r[name] for r in results)
                           for name in results[0]} for label, results in runs.items()}
        for name in seconds["this tree"]:
            if name not in seconds[args.against]:         # a model the revision lacks
                print(f"{name:>16}: this tree {seconds['this tree'][name]:6.2f} s/epoch "
                      f"(not in {args.against})")
                continue
            old, new = seconds[args.against][name], seconds["this tree"][name]
            print(f"{name:>16}: {args.against} {old:6.2f} s/epoch, this tree {new:6.2f} "
                  f"s/epoch: {old / new:.2f}x as fast")
    if args.project:
        final = seconds if not args.against else seconds["this tree"]
        for name, value in final.items():
            print(f"{name:>16}: 6 folds x {args.project} epochs of {args.rows} utterances: "
                  f"{6 * args.project * value / 60:.1f} min (projected)")


if __name__ == "__main__":
    main()
