"""The pipeline itself: a copy of the project in a temp dir, `git init`, `dvc repro` on a
tiny config; the outputs are right, `dvc status` is clean and a second repro does nothing.

`run_pipeline(tmp_path, overrides, targets)` is the helper for later stages: pass the
dotted-key overrides that make them tiny (e.g. {"train.epochs": 1}) and the stages to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Everything a data stage needs to be tiny; later stages add their own keys.
TINY = {"data.source": "synthetic", "data.synthetic.actors": 6, "data.synthetic.seed": 0}
DATA_STAGES = ("download", "labels", "split")
# Outputs and caches that a working copy may hold and a fresh clone does not.
NOT_COPIED = ("data/", "models/", "metrics/", "reports/", "plots/", "logs/", "dvclive/", "dvc.lock")


def copy_project(dest: Path) -> Path:
    """The git-tracked and untracked-not-ignored files of the project, without outputs."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        if name.startswith(NOT_COPIED) or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def write_params(project: Path, overrides: Mapping[str, Any]) -> None:
    """The project's params.yaml with dotted-key overrides (a missing key is an error)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if last not in node:
            raise KeyError(f"params.yaml has no key {dotted}")
        node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(project: Path, *args: str) -> str:
    """Run dvc in `project` with the venv's python first on PATH and the copy's package."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(project / "src"), DVC_NO_ANALYTICS="1")
    done = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=project, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def run_pipeline(tmp_path: Path, overrides: Mapping[str, Any] = TINY,
                 targets: Iterable[str] = DATA_STAGES) -> Path:
    """Copy the project, apply `overrides`, `dvc repro` the `targets`; the copy's path."""
    project = copy_project(tmp_path / "project")
    write_params(project, overrides)
    dvc(project, "repro", *targets)
    return project


def assert_up_to_date(project: Path, targets: Iterable[str] = DATA_STAGES) -> None:
    status = dvc(project, "status", *targets)
    assert "up to date" in status, status
    again = dvc(project, "repro", *targets)
    assert "Running stage" not in again, again


@pytest.mark.slow
def test_data_stages_on_a_tiny_synthetic_corpus(tmp_path):
    project = run_pipeline(tmp_path)
    raw = project / "data/raw/ravdess"
    assert sorted(p.name for p in raw.iterdir()) == [f"Actor_{a:02d}" for a in range(1, 7)]
    assert len(list(raw.glob("Actor_*/03-01-*.wav"))) == 360
    table = pd.read_csv(project / "data/interim/data.csv")
    assert len(table) == 360
    assert (project / "data/raw/ravdess" / table["path"]).map(Path.is_file).all()
    strong = pd.read_csv(project / "data/interim/data_strong.csv")
    normal = pd.read_csv(project / "data/interim/data_normal.csv")
    assert (len(strong), len(normal)) == (6 * 28, 6 * 32)
    assert list(strong.columns) == list(table.columns)
    assert (project / "dvc.lock").is_file()
    assert_up_to_date(project)
