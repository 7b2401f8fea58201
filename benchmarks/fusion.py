"""Late fusion on real speech: a head's and a log-mel model's kept fold checkpoints
(`benchmarks/accuracy.py --keep-models`) scored together, the head's weight chosen on
each fold's validation actors.

    # both members trained under train.monitor: ua, so each fold's validation actors are
    # held out: each fold chooses its weight on them, then its test actors are scored
    python benchmarks/fusion.py --data ../shared/ravdess \\
        --head runs/whisper_asp/seed0/whisper_asp-all --model runs/cnn/seed0/cnn-all \\
        --features-cache ~/.cache/se-features --out fused.json
    # members trained under train.monitor: none (validation actors trained them): the
    # weight is fixed, fusion.head_weight or --head-weight
    python benchmarks/fusion.py --data ../shared/ravdess --head ... --model ... --out f.json
    # a fixed weight (a default chosen on the validation curves above) on every fold
    python benchmarks/fusion.py ... --head-weight 0.6 --tag w0.6 --out f.json

Prints, per candidate weight, the mean UA over folds on the validation actors (what a
weight is chosen on) beside the test actors' UA (reported, never used to choose), then the
fused cell's test figures under each fold's own choice. `--out` writes the fused row in
accuracy.py's format (`<head>+<model>/<subset>/seed<k>`), for `accuracy.py --table`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speech_emotion import checkpoint, fusion, metrics, params  # noqa: E402
from speech_emotion.evaluate import cell_probabilities  # noqa: E402
from speech_emotion.paths import fused  # noqa: E402
from speech_emotion.ravdess import SUBSETS  # noqa: E402
from speech_emotion.report import split_name  # noqa: E402

import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRID = [round(0.1 * i, 1) for i in range(11)]      # candidate head weights


def cell_of(folder: Path) -> tuple[str, str]:
    """The model and subset of a kept cell folder `<model>-<subset>`."""
    model, subset = split_name(folder.name)
    if not subset:
        raise SystemExit(f"{folder}: not a cell folder <model>-<subset> of --keep-models")
    return model, subset


def monitor_of(folder: Path) -> str:
    """How the cell's checkpoints were selected (train.monitor), from its first fold."""
    first = sorted(folder.glob("fold*.pt"))
    if not first:
        raise SystemExit(f"{folder}: no fold checkpoints")
    return checkpoint.load(first[0]).get("monitor", "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--head", type=Path, required=True, metavar="CELL_DIR")
    parser.add_argument("--model", type=Path, required=True, metavar="CELL_DIR")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param (the members' encode/features settings)")
    parser.add_argument("--weights", nargs="+", type=float, default=GRID,
                        help="candidate head weights, chosen per fold on validation actors")
    parser.add_argument("--head-weight", type=float,
                        help="a fixed head weight for every fold (the candidates' validation "
                             "and test UA are still printed when validation actors were held "
                             "out); default: each fold's choice, or fusion.head_weight when "
                             "the members held no validation actors out")
    parser.add_argument("--seed", type=int, help="the seed of the row's key (default: the "
                                                 "seed<k> folder of --head)")
    parser.add_argument("--tag", default="", help="the row is <head>+<model>+<tag>")
    parser.add_argument("--features-cache", type=Path, metavar="DIR")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    head_name, subset = cell_of(args.head)
    model_name, model_subset = cell_of(args.model)
    if model_subset != subset:
        parser.error(f"--head is of subset {subset}, --model of {model_subset}")
    seed = args.seed
    if seed is None:
        found = re.fullmatch(r"seed(\d+)", args.head.parent.name)
        if not found:
            parser.error("--seed: the --head folder is not under a seed<k> folder")
        seed = int(found.group(1))
    monitors = {monitor_of(args.head), monitor_of(args.model)}
    choose = "none" not in monitors
    p = params.load(args.params, {"split.folds": args.folds,
                                  **accuracy.parse_overrides(args.set)})
    labels = list(SUBSETS[subset])

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        raw, table = accuracy.load_corpus(args.data, workdir)
        scored = {}                  # role -> side -> (predictions, protocol)
        for role, name, folder in (("head", head_name, args.head),
                                   ("model", model_name, args.model)):
            kind = accuracy.input_kind(name)
            inputs = accuracy.READERS[kind](table, raw, p, args.features_cache, workdir)
            sides = ("test", "validation") if choose else ("test",)
            scored[role] = {side: cell_probabilities(folder, subset, table, inputs, p, side,
                                                     progress=False) for side in sides}

    (head_test, head_protocol), (model_test, model_protocol) = (scored["head"]["test"],
                                                                scored["model"]["test"])
    result: dict = {}
    if choose:
        validation = fusion.weight_scores(scored["head"]["validation"][0],
                                          scored["model"]["validation"][0], labels,
                                          args.weights)
        test = fusion.weight_scores(head_test, model_test, labels, args.weights)
        weights = (fusion.choose_weights(validation) if args.head_weight is None
                   else {fold: args.head_weight for fold in sorted(set(validation["fold"]))})
        print(f"| {head_name} weight | validation UA | test UA |\n|---|---|---|")
        curves = {side: scores.groupby("head_weight")["ua"].mean()      # weight -> mean UA
                  for side, scores in (("validation", validation), ("test", test))}
        for w in args.weights:
            print(f"| {w:g} | {100 * curves['validation'][w]:.1f} | "
                  f"{100 * curves['test'][w]:.1f} |")
        for side, curve in curves.items():
            result[f"weights_{side}_ua"] = {f"{w:g}": round(float(curve[w]), 4)
                                            for w in args.weights}
        chosen = validation.set_index(["fold", "head_weight"])["ua"]
        result["validation_ua"] = round(statistics.fmean(chosen[f, w]
                                                         for f, w in weights.items()), 4)
        print(f"each fold's weight: {weights}")
    else:
        weights = p.fusion.head_weight if args.head_weight is None else args.head_weight
    predictions = fusion.fuse(head_test, model_test, labels, weights)
    result = {**metrics.summarise(predictions, labels, subset),
              "protocol": fusion.protocol(head_protocol, model_protocol),
              "head_weight": weights, **result,
              "members": {"head": str(args.head), "model": str(args.model)},
              "overrides": list(args.set)}
    label = fused(head_name, model_name) + (f"+{args.tag}" if args.tag else "")
    key = f"{label}/{subset}/seed{seed}"
    print(f"{key}: UA {result['ua']:.3f} WA {result['wa']:.3f} F1 {result['macro_f1']:.3f} "
          f"({result['protocol']})")
    for name, frame in ((head_name, head_test), (model_name, model_test)):
        print(f"  {name} alone: UA {metrics.summarise(frame, labels, subset)['ua']:.3f}")
    if args.out:
        args.out.write_text(json.dumps({key: result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
