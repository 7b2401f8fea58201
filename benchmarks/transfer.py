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
- `voice`, `room`, `codec` (heads; `--changed`, on by default for them): the scored actors'
  utterances changed as `benchmarks/robustness.py --conditions voices` changes them, each
  actor standardised by its own changed utterances under speaker_norm: `voice`, the mean
  of 10 % slower and 10 % faster (pitch, formants and tempo); `room`, a synthetic room
  (RT60 0.6 s); `codec`, 8-bit mu-law. A recipe whose training copies (`encode.copies`)
  are of the same kind is scored in its own family there: its random rooms are not the
  scored room, but they are rooms; `gender` and `intensity` are the columns it cannot
  have trained for.

A recipe may change `encode` (e.g. `encode.copies=2`): its encodings, with their training
copies, are made (and cached) for it; the copies join the training rows of every model it
fits, never the scored ones.

The rule, fixed before any run: among the recipes whose `utt` at the validation level is
within 2 points of the reference's (`--reference`, default the recipe named `default`;
`predict` on one file must not pay for it) and whose mean of the speaker columns (`n3`,
`n5`, `n10`, `skew`, `gender`, `intensity`) is no more than 0.5 points below the
reference's (the changed recordings must not be bought with other voices), the chosen one
has the highest mean of every transfer column it was scored on (the speaker columns, and
`voice`, `room`, `codec` where run), at the validation level.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speech_emotion import encoded, labels, metrics, models, params, training, waveforms  # noqa: E402
from speech_emotion.folds import FoldError, from_split, pick_validation, split_rows  # noqa: E402
from speech_emotion.inference import predict_proba  # noqa: E402
from speech_emotion.normalisation import speaker_statistics  # noqa: E402
from speech_emotion.ravdess import EMOTION_NAMES, SUBSETS, gender  # noqa: E402
from speech_emotion.sources.local import copy_corpus  # noqa: E402

import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEAKER_SETS = {"n3": (3, None), "n5": (5, None), "n10": (10, None), "skew": (10, 0.8)}
SPEAKERS = ("n3", "n5", "n10", "skew", "gender", "intensity")
# changed recordings: column -> the robustness conditions it averages
CHANGED = {"voice": ("speed0.9", "speed1.1"), "room": ("reverb0.6s",), "codec": ("mu-law",)}
TRANSFER = (*SPEAKERS, *CHANGED)
COLUMNS = ("utt", "spk", *TRANSFER)
SPEAKER_MARGIN = 0.005      # the rule: speaker columns' mean at most this below the reference's


def default_recipes(system: str) -> dict[str, dict]:
    """The default study: no speaker_norm (the reference), then `system` with it at two
    priors."""
    return {"default": {"train.speaker_norm.models": []},
            **{name: {"train.speaker_norm.models": [system], "train.speaker_norm.prior": prior}
               for name, prior in (("speaker", 0.0), ("speaker-prior5", 5.0))}}



UTT_MARGIN = 0.02           # the rule: utt within this of the default's, at validation level


def parse_recipe(text: str) -> tuple[str, dict]:
    """`name:key=value,key=value`; a value may be a list: `encode.copy_kinds=[room,voice]`."""
    name, _, settings = text.partition(":")
    items = re.split(r",(?![^\[]*\])", settings)            # not the commas inside [...]
    return name, {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items if item)}


def ua(actual: np.ndarray, predicted: np.ndarray) -> float:
    return metrics.figures(list(actual), list(predicted))["ua"]


def fit(system: str, p: params.Params, x: np.ndarray, y: np.ndarray, actors: np.ndarray,
        rows: np.ndarray, seed: int, feature_params: dict, copies: np.ndarray | None = None):
    """A model trained on `rows` and their training `copies` (N, K, F, T) if any; its
    checkpoint. Under `train.monitor: none` every epoch runs and the last is kept; under
    `ua` or `loss` (early stopping), `split.validation_actors` of the actors of `rows`
    (both genders when they have both; drawn from `seed`) are held out to pick the epoch,
    nested inside whatever `rows` are (at the validation level, inside the training
    actors less the validation actors), and train nothing."""
    held = rows[:0]
    if p.train.monitor != "none":
        present = sorted(int(a) for a in np.unique(actors[rows]))
        try:
            stop = pick_validation(present, p.split.validation_actors, seed)
        except FoldError:                    # one gender only (the gender column)
            stop = tuple(np.random.default_rng(seed).choice(
                present, size=p.split.validation_actors, replace=False).tolist())
        held = rows[np.isin(actors[rows], stop)]
        rows = rows[~np.isin(actors[rows], stop)]
    x_fit, y_fit, speakers = x[rows], y[rows], actors[rows]
    if copies is not None:
        x_fit, y_fit, speakers = training.with_copies(x_fit, y_fit, speakers, copies[rows])
    data = training.FoldData(x_fit, y_fit, x[held], y[held], speakers, actors[held])
    result = training.train_fold(system, p.section(system), p.train, data, list(EMOTION_NAMES),
                                 seed=seed, feature_params=feature_params, progress=False)
    mean = result["normalisation"]["mean"]
    model = models.build(system, p.section(system), x.shape[1], len(EMOTION_NAMES),
                         x.shape[2] if mean.ndim == 2 else None, feature_params.get("n_states"))
    model.load_state_dict(result["state_dict"])
    return model.eval(), {"normalisation": result["normalisation"]}


def scores(model, ckpt, x, y, actors, rows, classes, shifts, rng,
           changed: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Every in-corpus column for the scored `rows` (restricted to `classes`); `changed`:
    condition -> every row's changed inputs (N, F, T), for the `CHANGED` columns."""
    names = np.array(EMOTION_NAMES)
    keep = rows[np.isin(y[rows], [EMOTION_NAMES.index(c) for c in classes])]
    columns = [EMOTION_NAMES.index(c) for c in classes]

    def score(speaker=None, speakers=None, inputs=x) -> float:
        probs = predict_proba(model, ckpt, inputs[keep], shifts=shifts, speakers=speakers,
                              speaker=speaker)[:, columns]
        return ua(names[y[keep]], np.array(classes)[probs.argmax(axis=1)])

    out = {"utt": score(), "spk": score(speakers=actors[keep])}
    for column, conditions in (CHANGED.items() if changed else ()):  # speaker-adaptive
        out[column] = float(np.mean([score(speakers=actors[keep], inputs=changed[c])
                                     for c in conditions]))
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
             rng, copies=None, changed=None):
    """Every column of one fold and level."""
    sides = split_rows(table, fold)              # twins never straddle a split
    if level == "validation":
        fit_rows, scored = sides.train, sides.validation
    else:
        fit_rows, scored = np.sort(np.concatenate([sides.train, sides.validation])), sides.test
    shifts = p.evaluate.shifts           # predict_proba takes none for a head
    model, ckpt = fit(system, p, x, y, actors, fit_rows, seed, feature_params, copies)
    out = scores(model, ckpt, x, y, actors, scored, list(EMOTION_NAMES), shifts, rng, changed)
    genders = np.array([gender(int(a)) for a in actors])
    cross = []
    for train_gender in ("male", "female"):
        rows = fit_rows[genders[fit_rows] == train_gender]
        other = scored[genders[scored] != train_gender]
        if len(rows) and len(other):
            model, ckpt = fit(system, p, x, y, actors, rows, seed, feature_params, copies)
            cross.append(scores(model, ckpt, x, y, actors, other, list(EMOTION_NAMES),
                                shifts, rng)["spk"])
    out["gender"] = float(np.mean(cross))
    cross = []
    for train_intensity in ("normal", "strong"):
        rows = fit_rows[intensity[fit_rows] == train_intensity]
        other = scored[intensity[scored] != train_intensity]
        model, ckpt = fit(system, p, x, y, actors, rows, seed, feature_params, copies)
        cross.append(scores(model, ckpt, x, y, actors, other, list(SUBSETS["strong"]),
                            shifts, rng)["spk"])
    out["intensity"] = float(np.mean(cross))
    return out


def summarise(runs: dict) -> dict:
    """recipe -> level -> column -> mean over folds (the columns the recipe was scored on)."""
    return {recipe: {level: {c: statistics.mean(f[c] for f in folds.values()) for c in COLUMNS
                             if all(c in f for f in folds.values())}
                     for level, folds in levels.items()}
            for recipe, levels in runs["results"].items()}


def mean_of(row: dict, columns) -> float:
    return statistics.mean(row[c] for c in columns if c in row)


def choose(summary: dict, reference: str = "default") -> str:
    """The rule of the module docstring."""
    ref = summary[reference]["validation"]
    eligible = [r for r in summary
                if summary[r]["validation"]["utt"] >= ref["utt"] - UTT_MARGIN
                and mean_of(summary[r]["validation"], SPEAKERS)
                >= mean_of(ref, SPEAKERS) - SPEAKER_MARGIN]
    return max(eligible, key=lambda r: mean_of(summary[r]["validation"], TRANSFER))


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


def print_table(runs: dict, reference: str = "default") -> None:
    summary = summarise(runs)
    print(f"system {runs['system']}, seed {runs['seed']}, folds {runs['folds']}; UA %, "
          "mean over folds; speakers: mean of n3..intensity; transfer: of every transfer "
          "column")
    shown = [c for c in COLUMNS if any(c in row for levels in summary.values()
                                       for row in levels.values())]
    head = f"{'recipe':<18} {'level':<10} " + " ".join(f"{c:>9}" for c in shown) + \
        f" {'speakers':>9} {'transfer':>9}"
    print(head)
    for recipe, levels in summary.items():
        for level, row in levels.items():
            print(f"{recipe:<18} {level:<10} "
                  + " ".join(f"{100 * row[c]:9.1f}" if c in row else f"{'-':>9}" for c in shown)
                  + f" {100 * mean_of(row, SPEAKERS):9.1f} {100 * mean_of(row, TRANSFER):9.1f}")
    if reference in summary and "validation" in summary[reference]:
        print(f"chosen by the rule (validation actors, reference {reference}): "
              f"{choose(summary, reference)}")


def changed_inputs(table, raw: Path, p: params.Params, cache: Path | None, workdir: Path,
                   seed: int, system: str = "whisper_mlp") -> dict[str, np.ndarray]:
    """Condition -> every row's encoder inputs (N, 2D, L), or a frame head's (N, L*D, G),
    with its wave changed as
    robustness.py changes it (`waveforms.conditions(..., "voices")`; utterance i's draws
    from [seed, i]), cached as `accuracy.cached_encoded` caches the clean ones."""
    conditions = {c: change for c, change in waveforms.conditions(
        **waveforms.SPEECH_SPAN, kinds="voices").items() if c != "clean"}
    grid = p.encode.grid if system in params.GRID_HEADS else 0      # a frame head's grid
    plain = replace(p.encode, copies=0, grid=grid)
    settings = [{k: v for k, v in asdict(plain).items() if k in ("model", "pad_30s")},
                sorted(conditions), seed] + ([{"grid": grid}] if grid else [])

    def make(path: Path) -> None:
        encoder, weight_attrs = encoded.load_encoder(plain)
        encoded.write(path, table, encoded.encode_files(
            [raw / f for f in table["path"]], plain, encoder, changes_of=lambda i: [
                (change, np.random.default_rng([seed, i])) for change in conditions.values()]),
            plain, weight_attrs)

    feature_set = encoded.read(accuracy.cached("encoded-changed", settings, table, cache,
                                               workdir, make), grid=bool(grid))
    rows = feature_set.rows(table["path"])
    return {c: feature_set.copies[rows, k] for k, c in enumerate(conditions)}


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
    parser.add_argument("--reference", default="default",
                        help="the recipe the rule compares with (its utt and speaker columns)")
    parser.add_argument("--changed", action=argparse.BooleanOptionalAction, default=None,
                        help="score the voice, room and codec columns (default: for heads)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        print_table(merge([json.loads(path.read_text()) for path in args.table]), args.reference)
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
    head = args.system in params.HEAD_MODELS
    read = accuracy.READERS[accuracy.input_kind(args.system)]
    recipe_params = {name: params.load(args.params, {"split.folds": args.folds,
                                                     "train.seed": args.seed, **overrides})
                     for name, overrides in recipes.items()}
    inputs = {}                                 # recipe -> (x, copies): its encode params'
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        copy_corpus(args.data, raw, log=lambda *a, **k: print(*a, file=sys.stderr))
        table = labels.build_table(raw, progress=False)
        read_once = {}                          # recipes of the same inputs share them
        for name, p in recipe_params.items():
            section = json.dumps(asdict(p.encode if head else p.features), sort_keys=True)
            if section not in read_once:
                feature_set = read(table, raw, p, args.features_cache, Path(tmp))
                rows = feature_set.rows(table["path"])
                read_once[section] = (feature_set.features[rows],
                                      None if feature_set.copies is None
                                      else feature_set.copies[rows], feature_set.attrs)
            inputs[name] = read_once[section]
        changed = (changed_inputs(table, raw, base, args.features_cache, Path(tmp), args.seed,
                                  args.system)
                   if (head if args.changed is None else args.changed) else None)
    y = table["emotion_name"].map(EMOTION_NAMES.index).to_numpy(np.int64)
    actors = table["actor"].to_numpy()
    intensity = table["intensity_name"].to_numpy()
    folds = from_split(table["actor"], base.split, log=lambda *a, **k: None)
    for name, p in recipe_params.items():
        x, copies, attrs = inputs[name]
        start = time.perf_counter()
        runs["results"][name] = {level: {} for level in args.levels}
        for fold in folds:
            for level in args.levels:
                rng = np.random.default_rng([args.seed, fold.number])
                runs["results"][name][level][fold.name] = run_fold(
                    args.system, p, table, x, y, actors, intensity, fold, level,
                    (args.seed * 1000) + fold.number, attrs, rng, copies, changed)
                row = runs["results"][name][level][fold.name]
                print(f"{name} {fold.name} {level}: "
                      + " ".join(f"{c} {100 * row[c]:.1f}" for c in COLUMNS if c in row),
                      file=sys.stderr)
        runs["seconds"][name] = round(time.perf_counter() - start, 1)
        if args.out:                                  # after each recipe: nothing is lost
            args.out.write_text(json.dumps(runs, indent=1) + "\n")
    print_table(runs, args.reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
