"""Transfer proxies: how a system and recipe hold up on voices and speaking styles it did not
train on, measured on RAVDESS itself (other corpora are the user's: the `external` stage).

    python benchmarks/transfer.py --data ../shared/ravdess --features-cache ~/.cache/se-features \
        --out transfer.json                      # the default study: whisper_mlp, 3 recipes
    python benchmarks/transfer.py --data ../shared/ravdess --system whisper_mlp \
        --recipe 'prior20:train.speaker_norm.prior=20'
    python benchmarks/transfer.py --table a.json b.json   # runs saved with --out, one table

For each EmoBox fold (six by default), two levels, each trained and scored by the
pipeline's own code (`training.train_fold`, `inference.predict_proba`):
- `validation`: trained on the fold's training actors less its two validation actors (one
  male, one female), scored on the validation actors. Recipes are chosen here (nested).
- `test`: trained on every training actor, scored on the fold's four test actors. Reported,
  never chosen on.

The columns (UA, %; mean over folds):
- `utt`: in-corpus, utterance-only: nothing known of the speaker (each utterance its own
  speaker: what `predict` does with one file).
- `spk`: in-corpus, speaker-adaptive: each scored actor standardised by all its own
  unlabelled utterances (what `evaluate` does under `train.speaker_norm`).
- `n3`, `n5`, `n10`: the speaker's statistics from 3, 5 or 10 of its utterances drawn at
  random; `skew`: from 10, 8 of them of one emotion. Every utterance of the speaker is then
  scored. (A recipe without speaker_norm scores the same in every one of these columns.)
- `gender`: trained on one gender's actors only, scored on the other gender's (both ways,
  averaged): other voices. The model's speakers are then all male (or all female), as
  SAVEE's and TESS's are.
- `intensity`: trained on one intensity, scored on the other (both ways, averaged; over the
  seven classes both have): another speaking style.

The rule, fixed before any run: the chosen recipe has the highest mean of the transfer
columns (`n3`, `n5`, `n10`, `skew`, `gender`, `intensity`) at the validation level, among
recipes whose `utt` at the validation level is within 2 points of the recipe named
`default`'s (the reference: no speaker_norm, the pipeline's default before the study)
(`predict` on one file must not pay for it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speech_emotion import labels, metrics, models, params, training  # noqa: E402
from speech_emotion.folds import from_split, split_rows  # noqa: E402
from speech_emotion.inference import predict_proba  # noqa: E402
from speech_emotion.normalisation import speaker_statistics  # noqa: E402
from speech_emotion.ravdess import EMOTION_NAMES, SUBSETS, gender  # noqa: E402
from speech_emotion.sources.local import copy_corpus  # noqa: E402

import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEAKER_SETS = {"n3": (3, None), "n5": (5, None), "n10": (10, None), "skew": (10, 0.8)}
TRANSFER = ("n3", "n5", "n10", "skew", "gender", "intensity")
COLUMNS = ("utt", "spk", *TRANSFER)


def default_recipes(system: str) -> dict[str, dict]:
    """The default study: no speaker_norm (the reference), then `system` with it at two
    priors."""
    return {"default": {"train.speaker_norm.models": []},
            **{name: {"train.speaker_norm.models": [system], "train.speaker_norm.prior": prior}
               for name, prior in (("speaker", 0.0), ("speaker-prior5", 5.0))}}



UTT_MARGIN = 0.02           # the rule: utt within this of the default's, at validation level


def parse_recipe(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition(":")
    return name, {k: yaml.safe_load(v) for k, v in
                  (item.split("=", 1) for item in settings.split(",") if item)}


def ua(actual: np.ndarray, predicted: np.ndarray) -> float:
    return metrics.figures(list(actual), list(predicted))["ua"]


def fit(system: str, p: params.Params, x: np.ndarray, y: np.ndarray, actors: np.ndarray,
        rows: np.ndarray, seed: int, feature_params: dict):
    """A model trained on `rows` (monitor none: every epoch, the last kept); its checkpoint."""
    data = training.FoldData(x[rows], y[rows], x[rows][:0], y[rows][:0], actors[rows],
                             actors[rows][:0])
    result = training.train_fold(system, p.section(system), p.train, data, list(EMOTION_NAMES),
                                 seed=seed, feature_params=feature_params, progress=False)
    mean = result["normalisation"]["mean"]
    model = models.build(system, p.section(system), x.shape[1], len(EMOTION_NAMES),
                         x.shape[2] if mean.ndim == 2 else None)
    model.load_state_dict(result["state_dict"])
    return model.eval(), {"normalisation": result["normalisation"]}


def scores(model, ckpt, x, y, actors, rows, classes, shifts, rng) -> dict[str, float]:
    """Every in-corpus column for the scored `rows` (restricted to `classes`)."""
    names = np.array(EMOTION_NAMES)
    keep = rows[np.isin(y[rows], [EMOTION_NAMES.index(c) for c in classes])]
    columns = [EMOTION_NAMES.index(c) for c in classes]

    def score(speaker=None, speakers=None) -> float:
        probs = predict_proba(model, ckpt, x[keep], shifts=shifts, speakers=speakers,
                              speaker=speaker)[:, columns]
        return ua(names[y[keep]], np.array(classes)[probs.argmax(axis=1)])

    out = {"utt": score(), "spk": score(speakers=actors[keep])}
    norm = ckpt["normalisation"]
    for column, (n, skew) in SPEAKER_SETS.items():
        if "speaker" not in norm:
            out[column] = out["spk"]
            continue
        mean = std = None
        for actor in np.unique(actors[keep]):
            where = np.flatnonzero(actors[keep] == actor)
            own = keep[where]
            if skew is None:
                chosen = rng.choice(own, size=min(n, len(own)), replace=False)
            else:                            # 80% of one emotion drawn at random, the rest not
                main = rng.choice(np.unique(y[own]))
                first = rng.choice(own[y[own] == main],
                                   size=min(round(n * skew), (y[own] == main).sum()),
                                   replace=False)
                rest = rng.choice(own[y[own] != main], size=n - len(first), replace=False)
                chosen = np.concatenate([first, rest])
            m, s = speaker_statistics(x[chosen], [0] * len(chosen), norm["speaker"],
                                      utterance=norm.get("utterance", "none"))
            if mean is None:
                mean = torch.empty((len(keep), *m.shape[1:]))
                std = torch.empty((len(keep), *s.shape[1:]))
            mean[where], std[where] = m[0].float(), s[0].float()
        out[column] = score(speaker=(mean, std))
    return out


def run_fold(system, p, table, x, y, actors, intensity, fold, level, seed, feature_params,
             rng):
    """Every column of one fold and level."""
    sides = split_rows(table, fold)              # twins never straddle a split
    if level == "validation":
        fit_rows, scored = sides.train, sides.validation
    else:
        fit_rows, scored = np.sort(np.concatenate([sides.train, sides.validation])), sides.test
    shifts = p.evaluate.shifts           # predict_proba takes none for a head
    model, ckpt = fit(system, p, x, y, actors, fit_rows, seed, feature_params)
    out = scores(model, ckpt, x, y, actors, scored, list(EMOTION_NAMES), shifts, rng)
    genders = np.array([gender(int(a)) for a in actors])
    cross = []
    for train_gender in ("male", "female"):
        rows = fit_rows[genders[fit_rows] == train_gender]
        other = scored[genders[scored] != train_gender]
        if len(rows) and len(other):
            model, ckpt = fit(system, p, x, y, actors, rows, seed, feature_params)
            cross.append(scores(model, ckpt, x, y, actors, other, list(EMOTION_NAMES),
                                shifts, rng)["spk"])
    out["gender"] = float(np.mean(cross))
    cross = []
    for train_intensity in ("normal", "strong"):
        rows = fit_rows[intensity[fit_rows] == train_intensity]
        other = scored[intensity[scored] != train_intensity]
        model, ckpt = fit(system, p, x, y, actors, rows, seed, feature_params)
        cross.append(scores(model, ckpt, x, y, actors, other, list(SUBSETS["strong"]),
                            shifts, rng)["spk"])
    out["intensity"] = float(np.mean(cross))
    return out


def summarise(runs: dict) -> dict:
    """recipe -> level -> column -> mean over folds."""
    return {recipe: {level: {c: statistics.mean(f[c] for f in folds.values()) for c in COLUMNS}
                     for level, folds in levels.items()}
            for recipe, levels in runs["results"].items()}


def choose(summary: dict) -> str:
    """The rule of the module docstring."""
    floor = summary["default"]["validation"]["utt"] - UTT_MARGIN
    eligible = [r for r in summary if summary[r]["validation"]["utt"] >= floor]
    return max(eligible, key=lambda r: statistics.mean(summary[r]["validation"][c]
                                                       for c in TRANSFER))


def merge(saved: list[dict]) -> dict:
    """Runs saved with --out (one per core, say) as one: the same system, seed and folds."""
    first = saved[0]
    for other in saved[1:]:
        if [other[k] for k in ("system", "seed", "folds")] != \
                [first[k] for k in ("system", "seed", "folds")]:
            raise SystemExit("--table: the runs differ in system, seed or folds")
    return {**first, "results": {k: v for run in saved for k, v in run["results"].items()},
            "recipes": {k: v for run in saved for k, v in run["recipes"].items()},
            "seconds": {k: v for run in saved for k, v in run["seconds"].items()}}


def print_table(runs: dict) -> None:
    summary = summarise(runs)
    print(f"system {runs['system']}, seed {runs['seed']}, folds {runs['folds']}; UA %, "
          "mean over folds")
    head = f"{'recipe':<16} {'level':<10} " + " ".join(f"{c:>9}" for c in COLUMNS) + \
        f" {'transfer':>9}"
    print(head)
    for recipe, levels in summary.items():
        for level, row in levels.items():
            transfer = statistics.mean(row[c] for c in TRANSFER)
            print(f"{recipe:<16} {level:<10} " + " ".join(f"{100 * row[c]:9.1f}" for c in COLUMNS)
                  + f" {100 * transfer:9.1f}")
    if "default" in summary:
        print(f"chosen by the rule (validation actors): {choose(summary)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a folder or .zip in RAVDESS layout")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print runs saved with --out (same system, seed and folds; e.g. "
                             "one per core) as one table")
    parser.add_argument("--system", default="whisper_mlp")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME:K=V,K=V",
                        help="a recipe (params overrides); default: the study's three")
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--levels", nargs="+", default=["validation", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--features-cache", type=Path, metavar="DIR")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        print_table(merge([json.loads(path.read_text()) for path in args.table]))
        return 0
    if args.data is None:
        parser.error("--data is required (or --table)")
    recipes = (dict(parse_recipe(r) for r in args.recipe) if args.recipe
               else default_recipes(args.system))
    # the params file as it is now: editing it while the study runs changes nothing
    snapshot = Path(tempfile.mkdtemp(prefix="transfer-params-")) / "params.yaml"
    snapshot.write_bytes(args.params.read_bytes())
    args.params = snapshot
    base = params.load(args.params, {"split.folds": args.folds, "train.seed": args.seed})
    torch.set_num_threads(base.train.threads or torch.get_num_threads())
    runs = {"system": args.system, "seed": args.seed, "folds": args.folds, "recipes": recipes,
            "results": {}, "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        copy_corpus(args.data, raw, log=lambda *a, **k: print(*a, file=sys.stderr))
        table = labels.build_table(raw, progress=False)
        read = (accuracy.cached_encoded if args.system in params.HEAD_MODELS
                else accuracy.cached_features)
        feature_set = read(table, raw, base, args.features_cache, Path(tmp))
    x = feature_set.features[feature_set.rows(table["path"])]
    y = table["emotion_name"].map(EMOTION_NAMES.index).to_numpy(np.int64)
    actors = table["actor"].to_numpy()
    intensity = table["intensity_name"].to_numpy()
    folds = from_split(table["actor"], base.split, log=lambda *a, **k: None)
    for name, overrides in recipes.items():
        p = params.load(args.params, {"split.folds": args.folds, "train.seed": args.seed,
                                      **overrides})
        start = time.perf_counter()
        runs["results"][name] = {level: {} for level in args.levels}
        for fold in folds:
            for level in args.levels:
                rng = np.random.default_rng([args.seed, fold.number])
                runs["results"][name][level][fold.name] = run_fold(
                    args.system, p, table, x, y, actors, intensity, fold, level,
                    (args.seed * 1000) + fold.number, feature_set.attrs, rng)
                row = runs["results"][name][level][fold.name]
                print(f"{name} {fold.name} {level}: "
                      + " ".join(f"{c} {100 * row[c]:.1f}" for c in COLUMNS), file=sys.stderr)
        runs["seconds"][name] = round(time.perf_counter() - start, 1)
        if args.out:                                  # after each recipe: nothing is lost
            args.out.write_text(json.dumps(runs, indent=1) + "\n")
    print_table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
