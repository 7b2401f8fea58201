"""Accuracy on real speech: the pipeline's models against two classic baselines, one run.

    python benchmarks/accuracy.py --data ../shared/ravdess-dev            # all six folds
    python benchmarks/accuracy.py --data ../shared/ravdess-dev --systems cnn egemaps_svm \
        --subsets all -S train.epochs=30 --seeds 0 1
    python benchmarks/accuracy.py --table a.json b.json   # one table from runs saved with --out
    python benchmarks/accuracy.py --table a.json b.json --plot ua.png   # the same runs, drawn
    python benchmarks/accuracy.py --data ../shared/ravdess-dev --systems cnn_transformer \
        -S cnn_transformer.deltas=2 --tag deltas2 --out ablation.json   # an ablation's row
    python benchmarks/accuracy.py --data ../shared/ravdess-dev --systems cnn \
        --keep-models runs/   # the fold checkpoints kept, to score again later

Every system sees the same data, the same speaker-independent folds (`split.protocol`,
restricted to the actors present) and the same validation actors; test actors are only
ever predicted. The pipeline's models run through the pipeline's own code: the features
stage's extractor and store, `training.train_cell` and `evaluate.evaluate_cell`.
The baselines (benchmarks/baselines.py) are fitted on the same training actors and tuned
on the same validation actors. Prints one table: UA, WA, macro-F1 (mean +/- sd over
folds) per system and subset, and the wall time of each neural training.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speech_emotion import checkpoint, encoded, evaluate, features, labels, metrics, params, store  # noqa: E402
from speech_emotion.folds import from_split, split_rows, subset_rows  # noqa: E402
from speech_emotion.ravdess import SUBSETS  # noqa: E402
from speech_emotion.sources.local import copy_corpus  # noqa: E402
from speech_emotion.training import train_cell  # noqa: E402

import baselines  # noqa: E402

NEURAL = ("cnn", "cnn_transformer", *params.HEAD_MODELS)   # through train_cell / evaluate_cell
ROOT = Path(__file__).resolve().parents[1]


def parse_overrides(items: list[str]) -> dict:
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def baseline_predictions(name: str, x: np.ndarray, table: pd.DataFrame, subset: str,
                         p: params.Params, seed: int) -> pd.DataFrame:
    rows = subset_rows(table, subset)
    sub = table.iloc[rows].reset_index(drop=True)
    x = x[rows]
    y = sub["emotion_name"].to_numpy()
    parts = []
    for fold in from_split(sub["actor"], p.split):
        sides = split_rows(sub, fold)
        predicted = baselines.fit_predict(name, x, y, sides.train, sides.validation,
                                          sides.test, seed)
        test = sub.iloc[sides.test]
        parts.append(pd.DataFrame({"fold": fold.number, "actor": test["actor"].to_numpy(),
                                   "intensity_name": test["intensity_name"].to_numpy(),
                                   "actual": y[sides.test], "predicted": predicted}))
    return pd.concat(parts, ignore_index=True)


def neural_metrics(name: str, table: pd.DataFrame, feature_set: store.FeatureSet,
                   subset: str, p: params.Params, workdir: Path) -> tuple[dict, float]:
    """Test metrics of `name` trained on every fold, with `validation_ua`: the mean over
    folds of the validation actors' UA (training actors held out; under train.monitor ua
    or loss) on which a recipe is chosen, never on the test actors."""
    model_dir = workdir / f"{name}-{subset}"
    model_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summaries = train_cell(
        name, subset, p, table, feature_set.features, feature_set.attrs,
        save=lambda k, ckpt: checkpoint.save(checkpoint.path_for(model_dir, k), ckpt),
        progress=True, copies=feature_set.copies)
    seconds = time.perf_counter() - start
    result = evaluate.evaluate_cell(model_dir, subset, table, feature_set, p, progress=False)
    validation = [s["validation"]["ua"] for s in summaries if s["validation"]]
    if validation:
        result.metrics["validation_ua"] = round(statistics.mean(validation), 4)
    return result.metrics, seconds


def cached(kind: str, settings: object, table: pd.DataFrame, cache: Path | None,
           workdir: Path, make: Callable[[Path], None]) -> Path:
    """The HDF5 file of `kind` for `settings` and the files of `table` (by md5): in `cache`
    when given (reused by later runs), else in `workdir`; `make(path)` writes it when it is
    not there yet. The name holds a hash of both, so other settings never read it."""
    key = hashlib.sha256(json.dumps([settings, list(table["path"]), list(table["md5"])],
                                    sort_keys=True).encode()).hexdigest()[:16]
    folder = cache or workdir
    path = folder / f"{kind}-{key}.h5"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        make(path)                                                    # atomically
    return path


def cached_features(table: pd.DataFrame, raw: Path, p: params.Params, cache: Path | None,
                    workdir: Path) -> store.FeatureSet:
    """The features stage's features of `table`, read from `cache` when the same features
    section and the same files (by md5) made them before; otherwise extracted (and cached)."""
    settings = {k: v for k, v in asdict(p.features).items() if k != "batch_size"}

    def make(path: Path) -> None:
        store.write(path, table, features.extract_files([raw / f for f in table["path"]],
                                                        p.features), p.features)

    return store.read(cached("features", settings, table, cache, workdir, make))


def cached_encoded(table: pd.DataFrame, raw: Path, p: params.Params, cache: Path | None,
                   workdir: Path, grid: bool = False) -> store.FeatureSet:
    """The encode stage's output for `table`, cached as `cached_features` does: the pooled
    heads' inputs, or (`grid`) the frame heads'."""
    settings = {k: v for k, v in asdict(p.encode).items()
                if k not in store.NOT_FEATURE_DEFINING}

    def make(path: Path) -> None:
        encoder, weight_attrs = encoded.load_encoder(p.encode)
        encoded.write(path, table, encoded.encode_table(table, raw, p.encode, encoder),
                      p.encode, weight_attrs)

    return encoded.read(cached("encoded", settings, table, cache, workdir, make), grid=grid)


def load_corpus(data: Path, workdir: Path) -> tuple[Path, pd.DataFrame]:
    """The corpus at `data` copied into `workdir/raw` as the download stage would, and its
    data.csv table."""
    raw = workdir / "raw"
    copy_corpus(data, raw, log=lambda *a, **k: print(*a, file=sys.stderr))
    table = labels.build_table(raw, progress=True)
    print(f"{len(table)} utterances, actors {sorted(int(a) for a in table['actor'].unique())}",
          file=sys.stderr)
    return raw, table


def input_kind(system: str) -> str:
    """Which inputs a neural system trains on: features, encoded (pooled) or grid."""
    return ("grid" if system in params.GRID_HEADS else "encoded" if system in params.HEAD_MODELS
            else "features")


READERS = {"features": cached_features, "encoded": cached_encoded,
           "grid": functools.partial(cached_encoded, grid=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        help="a folder or .zip in RAVDESS layout (read as data.source=local)")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print one table from results saved with --out (e.g. one run per "
                             "core, same params and folds) instead of running anything")
    parser.add_argument("--any-seeds", action="store_true",
                        help="with --table: rows may have run with different seeds (the folds "
                             "column says how many each has) instead of an error")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="with --table: draw the saved runs instead of printing the table: "
                             "UA per system and subset, each seed a dot, the targets on `all`")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--systems", nargs="+", default=list(NEURAL + baselines.BASELINES))
    parser.add_argument("--subsets", nargs="+", default=list(SUBSETS))
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="train.seed values; each is a full repeat")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param, as in dvc exp run -S")
    parser.add_argument("--tag", default="",
                        help="name the -S settings of this run: its rows become <system>+<tag>, so "
                             "an ablation and the defaults can share one --table")
    parser.add_argument("--out", type=Path, help="write every metrics dict here as JSON")
    parser.add_argument("--keep-models", type=Path, metavar="DIR",
                        help="keep the neural checkpoints in DIR/<system>/seed<k>/<model>-<subset>/"
                             "fold<n>.pt (scored again later with evaluate.evaluate_cell, e.g. "
                             "under other evaluate.shifts) instead of a temporary folder")
    parser.add_argument("--features-cache", type=Path, metavar="DIR",
                        help="keep the pipeline's features here, one HDF5 file per features "
                             "section, and reuse them on later runs with the same data")
    args = parser.parse_args(argv)
    if args.plot and not args.table:
        parser.error("--plot draws saved runs: give them with --table")
    if args.table:
        return (plot_saved(args.table, args.plot) if args.plot
                else print_saved(args.table, args.any_seeds))
    if args.data is None:
        parser.error("--data is required (or --table)")
    if "/" in args.tag:
        parser.error(f"--tag {args.tag!r}: a '/' would break the system/subset/seed keys")

    overrides = {"split.folds": args.folds, **parse_overrides(args.set)}
    base = params.load(args.params, overrides)
    if base.train.threads:                        # as the train stage: 1 by default, so that
        torch.set_num_threads(base.train.threads)  # two runs side by side do not thrash
    print(f"torch {torch.__version__}, CPU kernels {cpu_kernels()}", file=sys.stderr)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        raw, table = load_corpus(args.data, workdir)
        inputs = {}           # the log-mel features and the encoder's output, when used
        for kind, read in READERS.items():
            if any(s in NEURAL and input_kind(s) == kind for s in args.systems):
                start = time.perf_counter()
                inputs[kind] = read(table, raw, base, args.features_cache, workdir)
                print(f"{kind}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for system in args.systems:
            x = (baselines.features_for(system, table, raw)
                 if system in baselines.BASELINES else None)
            for seed in args.seeds:
                p = params.load(args.params, {**overrides, "train.seed": seed})
                label = system_label(system, p.train.ensemble, args.tag)
                for subset in args.subsets:
                    key = f"{label}/{subset}/seed{seed}"
                    if system in NEURAL:
                        models_dir = (args.keep_models / label if args.keep_models
                                      else workdir) / f"seed{seed}"
                        result, seconds = neural_metrics(system, table,
                                                         inputs[input_kind(system)], subset, p,
                                                         models_dir)
                        result["train_seconds"] = round(seconds, 1)
                        # the CPU kernels decide the float sums, so the bits of the weights
                        # (docs/REPRODUCIBILITY.md)
                        result["cpu_kernels"] = cpu_kernels()
                    else:
                        predictions = baseline_predictions(system, x, table, subset, p, seed)
                        result = metrics.summarise(predictions, SUBSETS[subset], subset)
                    result["overrides"] = list(args.set)   # what the row ran with
                    results[key] = result
                    print(f"{key}: UA {result['ua']:.3f} WA {result['wa']:.3f} "
                          f"F1 {result['macro_f1']:.3f}", file=sys.stderr, flush=True)
    print(table_markdown(results, layout(results)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def cpu_kernels() -> str:
    """Which of ATen's CPU kernels run here (AVX512, AVX2, ...; ATEN_CPU_CAPABILITY caps it),
    and oneDNN's cap if ONEDNN_MAX_CPU_ISA sets one."""
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return torch.backends.cpu.get_cpu_capability() + (f", oneDNN {onednn}" if onednn else "")


def system_label(system: str, ensemble: int, tag: str) -> str:
    """A system's row name: a neural ensemble of seeds is a system of its own, and so is
    any system run under a --tag (its -S settings)."""
    return (system + (f"-ensemble{ensemble}" if system in NEURAL and ensemble > 1 else "")
            + (f"+{tag}" if tag else ""))


def load_saved(paths: list[Path]) -> dict[str, dict]:
    """Every `system/subset/seed<k>` result of several --out files."""
    results: dict[str, dict] = {}
    for path in paths:
        results.update(json.loads(path.read_text()))
    return results


def print_saved(paths: list[Path], any_seeds: bool = False) -> int:
    """The table of several --out files: systems, subsets and seeds as they were run."""
    results = load_saved(paths)
    rows = layout(results)
    # a row may be missing (an ablation run on `all` only), but a row that is there must
    # have every seed of the table (its mean is then over the same repeats as the others),
    # unless `any_seeds`: then each row says how many seeds it has
    missing = [f"{a}/{b}/seed{c}" for a in rows.systems for b in rows.subsets for c in rows.seeds
               if has_row(results, a, b) and f"{a}/{b}/seed{c}" not in results]
    if missing and not any_seeds:
        raise SystemExit(f"--table: the files lack {', '.join(missing)}")
    print(table_markdown(results, rows))
    return 0


def row_runs(results: dict[str, dict], system: str, subset: str) -> list[dict]:
    """The results of every seed of `system` on `subset`, in the order they were loaded."""
    return [r for key, r in results.items() if key.startswith(f"{system}/{subset}/seed")]


def has_row(results: dict[str, dict], system: str, subset: str) -> bool:
    """Whether any seed of `system` on `subset` is among the results."""
    return bool(row_runs(results, system, subset))


def layout(results: dict[str, dict]) -> argparse.Namespace:
    """The systems, subsets and seeds of `system/subset/seed<k>` keys, in order of appearance."""
    keys = [key.split("/") for key in results]
    unique = lambda i: list(dict.fromkeys(k[i] for k in keys))  # noqa: E731
    return argparse.Namespace(systems=unique(0), subsets=unique(1),
                              seeds=[int(s.removeprefix("seed")) for s in unique(2)])


def table_markdown(results: dict[str, dict], args) -> str:
    """UA, WA, macro-F1 as mean +/- sd over every fold of every seed, each neural
    system's training wall time (all folds, mean over seeds) and its protocol
    (utterance-only, or speaker-adaptive under train.speaker_norm)."""
    lines = ["| system | subset | UA | WA | macro-F1 | folds | training | protocol |",
             "|---|---|---|---|---|---|---|---|"]
    for system in args.systems:
        for subset in args.subsets:
            if not has_row(results, system, subset):
                continue
            runs = [results[key] for s in args.seeds
                    if (key := f"{system}/{subset}/seed{s}") in results]
            cells = []
            for figure in ("ua", "wa", "macro_f1"):
                values = [f[figure] for r in runs for f in r["folds"].values()]
                cells.append(f"{100 * statistics.fmean(values):.1f} ± {100 * _sd(values):.1f}")
            seconds = [r["train_seconds"] for r in runs if "train_seconds" in r]
            took = f"{statistics.fmean(seconds) / 60:.1f} min" if seconds else "-"
            # utterance-only unless each test actor's own audio standardised it (evaluate)
            protocol = runs[0].get("protocol", "utterance-only")
            lines.append(f"| {system} | {subset} | " + " | ".join(cells)
                         + f" | {runs[0]['n_folds']} x {len(runs)} seed(s) | {took} "
                         f"| {protocol} |")
    return "\n".join(lines)


def plot_saved(paths: list[Path], png: Path) -> int:
    """Draw several --out files: a panel per subset, a bar per system at the mean UA of its
    seeds (each seed's UA is the mean over its folds: a dot), with the sd over every fold of
    every seed as the table gives it. Each row shows the seeds it has (the table wants the
    same seeds in every row; a figure need not). Lines: the better baseline's mean UA and,
    on `all`, the targets +10 (cnn) and +15 (cnn_transformer) above it."""
    from speech_emotion.atomic import atomic_path
    from speech_emotion.figures import PNG_METADATA, plt

    results = load_saved(paths)
    rows = layout(results)
    fig, axes = plt.subplots(1, len(rows.subsets), figsize=(4.2 * len(rows.subsets), 4.2),
                             sharey=True, squeeze=False)
    for ax, subset in zip(axes[0], rows.subsets, strict=True):
        systems = [s for s in rows.systems if has_row(results, s, subset)]
        means = {}
        for i, system in enumerate(systems):
            runs = row_runs(results, system, subset)
            seed_ua = [100 * statistics.fmean(f["ua"] for f in r["folds"].values()) for r in runs]
            fold_ua = [100 * f["ua"] for r in runs for f in r["folds"].values()]
            means[system] = statistics.fmean(seed_ua)
            colour = "0.75" if system in baselines.BASELINES else "tab:blue"
            ax.bar(i, means[system], yerr=_sd(fold_ua), color=colour, edgecolor="black",
                   capsize=4, error_kw={"elinewidth": 0.8, "ecolor": "0.4"})
            ax.plot([i] * len(seed_ua), seed_ua, "o", color="black", markersize=3.5,
                    label="one seed (mean of its folds)" if i == 0 else None)
            ax.annotate(f"{means[system]:.1f}", (i, 2), ha="center", fontsize=8,
                        color="black")
        base = [means[s] for s in systems if s in baselines.BASELINES]
        if base:
            ax.axhline(max(base), color="0.3", linestyle=":", linewidth=1,
                       label=f"better baseline {max(base):.1f}")
            if subset == "all":
                for gain, style in ((10, "--"), (15, "-.")):
                    ax.axhline(max(base) + gain, color="tab:red", linestyle=style, linewidth=1,
                               label=f"target +{gain} ({max(base) + gain:.1f})")
        ax.set_xticks(range(len(systems)), systems, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{subset}", fontsize=10)
        ax.set_ylim(0, 90)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("UA % on the test actors")
    fig.suptitle("Bars: the mean of the seeds; whiskers: ± sd over every fold of every seed",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata=PNG_METADATA)
    plt.close(fig)
    print(f"wrote {png}")
    return 0


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
