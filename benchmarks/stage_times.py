"""Seconds per stage group of a run logged by benchmarks/real_run.sh.

    python benchmarks/stage_times.py fold1.log [six.log ...]

A stage's time runs from its "Running stage" line to the next one (the last to the end of
the run); a matrix stage's cells are summed by model, e.g. `train@cnn` is its three subsets.
"""

from __future__ import annotations

import re
import sys


def stage_times(text: str) -> tuple[dict[str, int], int | None]:
    """{stage group: seconds} in run order, and the whole run's seconds (None: unfinished)."""
    starts = [(int(m[1]), m[2]) for m in re.finditer(r"^(\d+) Running stage '([^']+)'", text,
                                                     re.MULTILINE)]
    end = re.search(r"^rc=\d+ total=(\d+)s", text, re.MULTILINE)
    total = int(end[1]) if end else None
    groups: dict[str, int] = {}
    for (start, name), (stop, _) in zip(starts, starts[1:] + [(total or starts[-1][0], "")],
                                        strict=True):
        stage, _, item = name.partition("@")
        group = f"{stage}@{item.rsplit('-', 1)[0]}" if item else stage
        groups[group] = groups.get(group, 0) + stop - start
    return groups, total


def main() -> None:
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8", errors="replace") as f:
            groups, total = stage_times(f.read())
        print(f"{path}:")
        for group, seconds in groups.items():
            print(f"  {group:28s} {seconds:6d} s {seconds / 60:6.1f} min")
        print(f"  {'total':28s} {total if total is not None else '(unfinished)'} s"
              + (f" {total / 60:6.1f} min" if total is not None else ""))


if __name__ == "__main__":
    main()
