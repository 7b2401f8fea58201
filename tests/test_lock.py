"""The committed dvc.lock agrees with the tree: every `deps` entry that git tracks has the
md5 the lock records, every `params` entry has the value params.yaml gives, and every
stage's command is the one dvc.yaml gives. A commit that changes code or params without
re-running the pipeline fails here, instead of making a fresh clone's `dvc status` dirty
and its first `dvc repro` retrain cells only to write the same models.

DVC itself does the comparing (`dvc status --json`), so file and folder hashes are
computed exactly as `dvc repro` computes them. Works on a clean clone with no DVC cache
and no outputs, as CI runs it: a dependency that is some stage's output (data, models) is
absent there and is not git's to check; its hash is covered by the stage that makes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def produced_paths(lock: dict) -> list[str]:
    """Every output path that dvc.lock records (data, models, metrics, plots)."""
    return [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]


def produced(path: str, outputs: list[str]) -> bool:
    """Whether `path` is, holds or lies inside some stage's output: not git's to check
    (absent on a clean clone; its hash is the business of the stage that makes it)."""
    return any(path == out or out.startswith(path.rstrip("/") + "/")
               or path.startswith(out.rstrip("/") + "/") for out in outputs)


def lock_disagreements(status: dict, outputs: list[str]) -> list[str]:
    """One line per disagreement in `dvc status --json` output between the lock and the
    tree: a git-tracked dep whose hash changed (or that is gone), a param whose value
    changed, or a changed command. Deps that are (or hold) a stage's output, in
    `outputs`, are not compared: on a clean clone they are absent."""
    problems = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):        # "always changed", "changed checksum"
                if change != "changed checksum":
                    continue
                problems.append(f"{stage}: the lock's own checksum disagrees (edited by hand?)")
                continue
            if "changed command" in change:
                problems.append(f"{stage}: the command differs from dvc.yaml's")
            for path, what in change.get("changed deps", {}).items():
                if isinstance(what, dict):          # params.yaml: {key: modified|new|deleted}
                    problems += [f"{stage}: param {key} {how}" for key, how in what.items()]
                elif produced(path, outputs):
                    continue                        # data, models: absent on a clean clone
                else:
                    problems.append(f"{stage}: dep {path} {what}")
    return problems


@pytest.fixture(scope="module")
def dvc_status() -> dict:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "{}")


def test_committed_lock_matches_the_code_and_params(dvc_status):
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    problems = lock_disagreements(dvc_status, produced_paths(lock))
    assert not problems, ("dvc.lock disagrees with the tree; run `dvc repro` and commit the "
                          "lock:\n" + "\n".join(problems))


def test_a_changed_dep_or_param_is_caught():
    """The check itself: the shapes of disagreement that `dvc status --json` reports are
    each caught, and a clean clone's missing outputs are not."""
    status = {
        "train@cnn-all": [{"changed deps": {"src/speech_emotion/training.py": "modified",
                                            "data/processed/features.h5": "deleted"}},
                          {"changed outs": {"models/cnn-all": "deleted"}}],
        "train@cnn-strong": [{"changed deps": {"params.yaml": {"train.seed": "modified"}}}],
        "labels": [{"changed deps": {"src/speech_emotion/labels.py": "deleted"}},
                   {"changed command": True}],
        "describe": [{"changed outs": {"reports/figures": "deleted"}}],
        "external": [{"changed deps": {"models": "modified"}}],
    }
    problems = lock_disagreements(status, ["data/processed/features.h5", "models/cnn-all",
                                           "reports/figures"])
    assert "train@cnn-all: dep src/speech_emotion/training.py modified" in problems
    assert "train@cnn-strong: param train.seed modified" in problems
    assert "labels: dep src/speech_emotion/labels.py deleted" in problems
    assert "labels: the command differs from dvc.yaml's" in problems
    assert not any("features.h5" in p or "describe" in p or "external" in p for p in problems)
    assert len(problems) == 4
