"""The results table: the `metrics/<model>-<subset>.json` of every cell in one Markdown table.

One row per cell (classifiers and VAE probes alike, they share the metrics schema):
UA +/- the standard deviation over folds, WA and macro-F1, in percent, and the folds
that ran. Below the table, the test actors of each fold, so a reader knows exactly what
was held out. With external corpora scored (`metrics/external/<corpus>/<cell>.json`, the
stage external), one more column per corpus: the cell's UA on it, over the classes the two
share. The text holds no timestamp: the same metrics give the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ravdess import SUBSETS

# Rows come in this order; anything else follows, sorted by name.
MODEL_ORDER = ("cnn", "cnn_transformer", "beta_vae", "fhvae", "ss_fhvae")
SUBSET_ORDER = tuple(SUBSETS)


class ReportError(ValueError):
    """A metrics file that cannot go into the table; the message names the file."""


@dataclass(frozen=True)
class Row:
    name: str                     # the file stem, e.g. "cnn-all"
    model: str
    subset: str
    ua: float
    ua_sd: float | None
    wa: float
    macro_f1: float
    folds: dict[int, tuple[int, ...]]   # fold number -> test actors that ran
    speaker_acc: float | None = None    # representation probes only: speaker-probe accuracy


def read_row(path: str | Path) -> Row:
    """One metrics file as a table row; raises ReportError naming the file if malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable metrics file ({err})") from None
    model, subset = split_name(path.stem)
    try:
        folds = {int(name.removeprefix("fold")): tuple(int(a) for a in fold["test_actors"])
                 for name, fold in data["folds"].items()}
        sd = data["ua_sd"]
        speaker = data.get("speaker_acc")
        return Row(path.stem, model, subset, _number(data["ua"]),
                   None if sd is None else _number(sd),
                   _number(data["wa"]), _number(data["macro_f1"]), folds,
                   None if speaker is None else _number(speaker))
    except (KeyError, TypeError, ValueError) as err:
        raise ReportError(f"{path}: not in the metrics schema (problem with {err})") from None


def split_name(stem: str) -> tuple[str, str]:
    """`cnn_transformer-strong` -> (`cnn_transformer`, `strong`); no subset -> (stem, "")."""
    model, _, subset = stem.rpartition("-")
    if model and subset in SUBSETS:
        return model, subset
    return stem, ""


def read_rows(folder: str | Path, cells: list[str] | None = None) -> list[Row]:
    """The metrics of `cells` (`cnn-all`, ...; None: every `*.json`) in `folder`, in model
    then subset order. A listed cell without its file is an error; files of cells not
    listed (say, a model since dropped from params.yaml) are left out (`stale_files`)."""
    folder = Path(folder)
    if cells is None:
        paths = sorted(folder.glob("*.json"))
    else:
        paths = [folder / f"{name}.json" for name in cells]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise ReportError(f"{missing[0]}: no metrics for this cell of params.yaml; run "
                              "its evaluate or probe stage")
    return sorted((read_row(path) for path in paths), key=_order)


def stale_files(folder: str | Path, cells: list[str]) -> list[Path]:
    """`*.json` files in `folder` of cells that `cells` does not list."""
    return sorted(path for path in Path(folder).glob("*.json") if path.stem not in set(cells))


def read_external(folder: str | Path, cells: list[str]) -> dict[str, dict[str, float]]:
    """Corpus -> cell -> UA, from `folder/<corpus>/<cell>.json` (the external stage's
    output), for the cells of `cells` that were scored; corpora in name order, none when
    the folder is absent or empty."""
    out: dict[str, dict[str, float]] = {}
    for corpus in sorted(p for p in Path(folder).glob("*") if p.is_dir()):
        scored = {}
        for name in cells:
            path = corpus / f"{name}.json"
            if path.is_file():
                try:
                    scored[name] = _number(json.loads(path.read_text(encoding="utf-8"))["ua"])
                except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    raise ReportError(f"{path}: not an external metrics file (problem with "
                                      f"{err})") from None
        if scored:
            out[corpus.name] = scored
    return out


def markdown(rows: list[Row], external: dict[str, dict[str, float]] | None = None) -> str:
    """The results table in Markdown, with the test actors of each fold below it;
    `external` (`read_external`) adds a column of UA per corpus."""
    if not rows:
        raise ReportError("no metrics files to report")
    external = external or {}
    lines = [
        "| model | subset | folds | UA (%) | WA (%) | macro-F1 (%) | speaker probe (%) |"
        + "".join(f" UA on {corpus} (%) |" for corpus in external),
        "|---|---|---|---:|---:|---:|---:|" + "---:|" * len(external),
    ]
    for row in rows:
        ua = _percent(row.ua)
        if row.ua_sd is not None:
            ua += f" ± {_percent(row.ua_sd)}"
        lines.append(f"| {row.model} | {row.subset or '-'} | {_fold_list(row.folds)} | {ua} | "
                     f"{_percent(row.wa)} | {_percent(row.macro_f1)} | "
                     f"{'-' if row.speaker_acc is None else _percent(row.speaker_acc)} |"
                     + "".join(f" {_percent(cells[row.name]) if row.name in cells else '-'} |"
                               for cells in external.values()))
    lines += ["", "UA: unweighted accuracy (balanced accuracy, the mean per-class recall); "
              "WA: weighted accuracy (plain accuracy); both and macro-F1 are means over the "
              "folds, ± the sample standard deviation of UA over folds (shown with two "
              "folds or more). Every figure is on the test actors of a fold only. "
              "Speaker probe (representations only): accuracy of a linear probe naming the "
              "test actors from the same latents, fitted on one repetition and scored on the "
              "other; lower means the representation carries less speaker identity."
              + (" UA on a corpus (external corpora, classifiers only): every fold model "
                 "averaged, on a corpus that is not RAVDESS, over the classes the two share "
                 "(its mean recall of those; docs/EXTERNAL.md)." if external else ""), ""]
    lines.append("Test actors per fold: " + "; ".join(
        f"fold {number}: {actors}" for number, actors in _fold_actors(rows).items()) + ".")
    return "\n".join(lines) + "\n"


def _fold_actors(rows: list[Row]) -> dict[int, str]:
    """Fold number -> its test actors, as text (sets that differ between cells joined by /)."""
    seen: dict[int, list[tuple[int, ...]]] = {}
    for row in rows:
        for number, actors in row.folds.items():
            if actors not in seen.setdefault(number, []):
                seen[number].append(actors)
    return {number: " / ".join(", ".join(f"{a:02d}" for a in actors) for actors in sets)
            for number, sets in sorted(seen.items())}


def _fold_list(folds: dict[int, Any]) -> str:
    numbers = sorted(folds)
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)


def _order(row: Row) -> tuple:
    model_rank = MODEL_ORDER.index(row.model) if row.model in MODEL_ORDER else len(MODEL_ORDER)
    subset_rank = (SUBSET_ORDER.index(row.subset) if row.subset in SUBSET_ORDER
                   else len(SUBSET_ORDER))
    return model_rank, row.model, subset_rank, row.name


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"
