"""One readable table of the experiments: `speech-emotion exps`
(or `python -m speech_emotion.exps`).

`dvc exp show` has a column for every param and every metric of every cell: hundreds, so
no terminal shows it. This view has one row per experiment (and the workspace and commits
that `dvc exp show` lists) and cell: the experiment's name and the params whose values
differ between the experiments (on its first row), the cell, and the cell's headline
figures ua, wa and f1 (macro-F1) from `metrics/<cell>.json`.

    speech-emotion exps                    # runs `dvc exp show --json` here
    speech-emotion exps -A                 # extra arguments go to `dvc exp show`
    dvc exp show --json > e.json && speech-emotion exps --from e.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

HEADLINE = (("ua", "ua"), ("wa", "wa"), ("macro_f1", "f1"))


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _runs(node: Any) -> Iterator[tuple[str, dict]]:
    """(name, data) of every revision in `dvc exp show --json`, in its order."""
    if isinstance(node, list):
        for item in node:
            yield from _runs(item)
    elif isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and ("params" in data or "metrics" in data):
            rev = str(node.get("rev") or data.get("rev") or "?")
            name = node.get("name") or data.get("name") or (
                rev[:7] if all(c in "0123456789abcdef" for c in rev) else rev)
            yield name, data
        for key in ("experiments", "revs"):
            if key in node:
                yield from _runs(node[key])


def rows(shown: Any) -> list[dict[str, Any]]:
    """One row per revision: its name, its params (dotted keys) and cell -> headline figures."""
    out = []
    for name, data in _runs(shown):
        params: dict[str, Any] = {}
        for file_data in (data.get("params") or {}).values():
            params.update(_flat((file_data or {}).get("data") or {}))
        cells: dict[str, dict[str, Any]] = {}
        for path, payload in (data.get("metrics") or {}).items():
            figures = (payload or {}).get("data") or {}
            if any(key in figures for key, _ in HEADLINE):
                cells[PurePosixPath(path.replace("\\", "/")).stem] = figures
        out.append({"name": name, "params": params, "cells": cells})
    return out


def table(shown: Any) -> str:
    """The fixed-width table: experiment and changed params, then a row per cell with its
    ua / wa / f1."""
    found = rows(shown)
    if not found:
        return "no experiments (run `dvc exp run` first)"
    keys = sorted({k for r in found for k in r["params"]})
    changed = [k for k in keys if len({json.dumps(r["params"].get(k)) for r in found}) > 1]
    head = ["experiment", *changed, "cell", *(short for _, short in HEADLINE)]
    body = []
    for r in found:
        first = [r["name"], *(_text(r["params"].get(k)) for k in changed)]
        for i, (cell, figures) in enumerate(sorted(r["cells"].items()) or [("-", {})]):
            body.append((first if i == 0 else [""] * len(first)) + [cell] + [
                _text(figures.get(key), number=True) for key, _ in HEADLINE])
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    left = len(head) - len(HEADLINE)          # names, params and the cell: left-aligned

    def row(line: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    return "\n".join(row(line) for line in [head, *body])


def _text(value: Any, number: bool = False) -> str:
    if value is None:
        return "-"
    if number and isinstance(value, float):
        return f"{value:.4f}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="speech-emotion exps", description=__doc__.splitlines()[0],
                                 epilog="Other arguments (e.g. -A, --rev) go to `dvc exp show`.")
    ap.add_argument("--from", dest="source", default=None, metavar="JSON",
                    help="read `dvc exp show --json` output from this file ('-': stdin)")
    args, rest = ap.parse_known_args(argv)
    if args.source is not None:
        text = (sys.stdin.read() if args.source == "-"
                else Path(args.source).read_text(encoding="utf-8"))
    else:
        done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *rest],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"error: dvc exp show failed: {done.stderr.strip()}", file=sys.stderr)
            return 2
        text = done.stdout
    try:
        shown = json.loads(text)
    except json.JSONDecodeError as err:
        print(f"error: not the JSON of `dvc exp show --json` ({err})", file=sys.stderr)
        return 2
    print(table(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
