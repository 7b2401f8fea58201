"""Reliability (issue 9), the whole pipeline: `dvc repro` on a reduced config in two fresh
copies gives the same dvc.lock (data, features, figures, models, metrics); a second
`dvc repro` runs nothing; changing one model's param re-runs only that model's cells; a
stage killed with SIGKILL half-way leaves no partial output and the next `dvc repro`
completes (and gives back the same dvc.lock).

Every output is byte-stable on one platform: the train stage prints its seconds per epoch
and keeps clock time out of its tracked outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import VENV_BIN, copy_project, dvc, write_params

pytestmark = pytest.mark.slow

# Every stage of dvc.yaml on 4 synthetic actors (fold 1 tests actor 01), both classifiers
# (tiny, one epoch), the Whisper heads and a fusion on the `all` subset, every representation.
TINY = {
    "data.source": "synthetic",
    "data.synthetic.actors": 4,
    "split.folds": [1],
    "features.duration_s": 1.0,
    "features.n_mels": 32,
    "cells.models": ["cnn", "cnn_transformer"],
    "cells.subsets": ["all"],
    "cells.heads": ["whisper_mlp", "whisper_asp"],  # the packaged Whisper base, 240 utterances
    "cells.fused_heads": ["whisper_asp"],           # fuse@whisper_asp-cnn-all
    "cells.fused_models": ["cnn"],
    "encode.grid": 4,
    "train.epochs": 1,
    "train.patience": 1,
    "train.device": "cpu",
    "train.threads": 1,
    "cnn.channels": [4, 8],
    "cnn_transformer.channels": [4, 8],
    "cnn_transformer.d_model": 16,
    "cnn_transformer.n_heads": 2,
    "cnn_transformer.n_layers": 1,
    "cnn_transformer.dim_feedforward": 32,
    "cells.variants": ["logmel_stats", "beta_vae", "fhvae", "ss_fhvae"],
    "cells.variant_subsets": ["all"],
    "represent.beta_vae.epochs": 1,
    "represent.beta_vae.channels": [4, 8],
    "represent.beta_vae.latent_dim": 4,
    "represent.fhvae.epochs": 1,
    "represent.fhvae.hidden": 8,
    "represent.fhvae.z1_dim": 3,
    "represent.fhvae.z2_dim": 3,
    "represent.ss_fhvae.epochs": 1,
    "represent.ss_fhvae.hidden": 8,
    "represent.ss_fhvae.z1_dim": 3,
    "represent.ss_fhvae.z2_dim": 3,
}
CELLS = ("cnn-all", "cnn_transformer-all")
# What the issue asks to be byte-identical: data, features, models, metrics (and the rest).
MUST_MATCH = ("data/raw/ravdess", "data/interim/data.csv", "data/processed/features.h5",
              "data/processed/encoded.h5", "models/whisper_mlp-all", "metrics/whisper_mlp-all.json",
              "models/whisper_asp-all", "metrics/whisper_asp-all.json",
              "models/cnn-all", "models/cnn_transformer-all", "models/logmel_stats-all",
              "metrics/cnn-all.json", "metrics/cnn_transformer-all.json",
              "metrics/logmel_stats-all.json", "metrics/whisper_asp+cnn-all.json",
              "data/predictions/whisper_asp+cnn-all.csv", "data/predictions/cnn-all.csv",
              "reports/figures", "reports/summary.json",
              "reports/results.md")
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}


def env(project: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                PYTHONPATH=str(project / "src"), DVC_NO_ANALYTICS="1", **GIT_ENV, **extra)


def start_repro(project: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    """`dvc repro` in its own process group (so that a test can kill all of it)."""
    return subprocess.Popen([str(VENV_BIN / "dvc"), "repro", *args], cwd=project,
                            env=env(project, **extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"dvc repro failed ({proc.returncode}):\n{out[-5000:]}"
    return out


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def outputs(lock_text: str) -> dict[str, dict]:
    """Path -> hash entry of every stage output in a dvc.lock."""
    lock = yaml.safe_load(lock_text)
    return {out["path"]: {k: v for k, v in out.items() if k != "path"}
            for stage in lock["stages"].values() for out in stage.get("outs", [])}


def leftovers(project: Path) -> list[str]:
    """Temporary files of interrupted writers (speech_emotion.atomic names them so)."""
    return sorted(p.relative_to(project).as_posix() for p in project.rglob(".*")
                  if re.search(r"\.(tmp|old)-\d+$", p.name) and ".dvc" not in p.parts
                  and ".git" not in p.parts)


def contents(path: Path) -> dict[str, bytes] | None:
    """The bytes of a file or of every file of a folder; None when it does not exist."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two fresh copies of the project on TINY (same files, other folders and another
    PYTHONHASHSEED), `dvc repro` in both at once; their dvc.lock texts as they were."""
    base = tmp_path_factory.mktemp("reproduction")
    first = copy_project(base / "first")
    write_params(first, TINY)
    subprocess.run(["git", "add", "-A"], cwd=first, check=True, env=env(first))
    subprocess.run(["git", "commit", "-qm", "tiny config"], cwd=first, check=True, env=env(first))
    second = base / "second"
    shutil.copytree(first, second, symlinks=True)
    start = time.perf_counter()
    trace = base / "trace"          # what each stage of the first run read and imported
    procs = {"first": start_repro(first, PYTHONHASHSEED="0", SPEECH_EMOTION_TRACE=str(trace)),
             "second": start_repro(second, PYTHONHASHSEED="12345")}
    logs = {name: finish(proc) for name, proc in procs.items()}
    print(f"two fresh `dvc repro` runs side by side: {time.perf_counter() - start:.0f} s")
    return {"first": first, "second": second, "logs": logs, "trace": trace,
            "locks": {"first": (first / "dvc.lock").read_text(),
                      "second": (second / "dvc.lock").read_text()}}


def test_two_fresh_runs_give_the_same_dvc_lock(runs):
    first, second = (outputs(runs["locks"][name]) for name in ("first", "second"))
    assert set(first) == set(second)
    assert set(MUST_MATCH) <= set(first), sorted(set(MUST_MATCH) - set(first))
    differ = sorted(path for path in first if first[path] != second[path])
    assert differ == []
    assert runs["locks"]["first"] == runs["locks"]["second"]   # deps and params too
    # the 4-actor corpus runs and says what it lacks
    assert "labels: not the full corpus: 20 of 24 actors absent: 05-24" in runs["logs"]["first"]


def test_a_second_repro_runs_nothing(runs):
    project = runs["first"]
    start = time.perf_counter()
    again = dvc(project, "repro")
    seconds = time.perf_counter() - start
    print(f"second `dvc repro`: {seconds:.1f} s, nothing run")   # shown with pytest -s
    assert stages_run(again) == set(), again
    assert json.loads(dvc(project, "status", "--json").strip() or "{}") == {}


def test_one_models_param_reruns_only_its_cells(runs):
    project = runs["second"]
    other = {p.name: p.read_bytes() for p in (project / "models/cnn_transformer-all").iterdir()}
    write_params(project, {"cnn.dropout": 0.3})
    status = json.loads(dvc(project, "status", "--json"))
    assert status == {"train@cnn-all": [{"changed deps": {"params.yaml": {"cnn": "modified"}}}]}
    ran = stages_run(dvc(project, "repro"))
    # evaluate follows its model, the fusion its predictions; external follows models/ (a
    # no-op without corpora); report follows metrics/ (when the figures moved)
    assert {"train@cnn-all", "evaluate@cnn-all"} <= ran <= \
        {"train@cnn-all", "evaluate@cnn-all", "fuse@whisper_asp-cnn-all", "external",
         "report"}, ran
    assert {p.name: p.read_bytes()
            for p in (project / "models/cnn_transformer-all").iterdir()} == other


def test_a_stage_killed_half_way_leaves_no_partial_output(runs):
    """SIGKILL the whole `dvc repro` (DVC and the train stage) once the stage has written
    an epoch of logs into its temporary folders; nothing partial is in an output's place,
    the next `dvc repro` completes, and with the params back the lock is as before."""
    project = runs["first"]
    cell_outputs = ("models/cnn-all", "logs/train/cnn-all/summary.json",
                    "logs/train/cnn-all/plots/metrics")
    before = {path: contents(project / path) for path in cell_outputs}
    write_params(project, {"train.epochs": 30, "train.patience": 30})   # seconds of training
    proc = start_repro(project)
    deadline = time.monotonic() + 300
    logs = project / "logs" / "train"
    while not list(logs.glob(".cnn-all.tmp-*/plots/metrics/fold1/train/loss.tsv")):
        assert proc.poll() is None, \
            f"the stage ended before it could be killed:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the train stage never started writing"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(project), "killed before it wrote anything"
    # nothing partial where an output belongs: the old output or nothing (DVC removes a
    # stage's outputs before it runs it)
    for path in cell_outputs:
        assert contents(project / path) in (before[path], None), path

    ran = stages_run(finish(start_repro(project)))
    assert "train@cnn-all" in ran
    assert (project / "models/cnn-all/fold1.pt").is_file()
    assert leftovers(project) == []                       # the next run removed them
    assert json.loads(dvc(project, "status", "--json").strip() or "{}") == {}

    write_params(project, {"train.epochs": 1, "train.patience": 1})
    finish(start_repro(project))
    assert outputs((project / "dvc.lock").read_text()) == outputs(runs["locks"]["first"])


# Package files every process imports that compute nothing: the package's own __init__
# (its version, and the hook that writes these traces) and the trace module itself.
UNTRACKED_MODULES = ("src/speech_emotion/__init__.py", "src/speech_emotion/trace.py")


def _covered(used: str, declared: list[str], sep: str) -> bool:
    """`used` is `declared` or lies below one of them (`train` covers `train.optim.lr`)."""
    return any(used == d or used.startswith(d + sep) for d in declared)


def undeclared(lock: dict, traces: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Per stage of `lock` that a trace ran: the params it read and the package files (its
    own script included) it imported that the stage does not declare."""
    by_cmd = {stage["cmd"]: name for name, stage in lock["stages"].items()}
    problems: dict[str, dict[str, list[str]]] = {}
    for trace in traces:
        name = by_cmd.get("python " + " ".join(trace["argv"]))
        if name is None:        # dvc's own processes do not import speech_emotion
            continue
        stage = lock["stages"][name]
        params = list(stage.get("params", {}).get("params.yaml", {}))
        deps = [dep["path"] for dep in stage["deps"]]
        missing = {
            "params": [key for key in trace["params"] if not _covered(key, params, ".")],
            "deps": [path for path in [trace["argv"][0], *trace["modules"]]
                     if path not in UNTRACKED_MODULES and not _covered(path, deps, "/")],
        }
        if any(missing.values()):
            problems[name] = {k: v for k, v in missing.items() if v}
    return problems


def test_every_stage_declares_the_params_and_code_it_uses(runs):
    """Every stage of the first run recorded (speech_emotion.trace) the params it read and
    the package modules it imported; each must be among its stage's params and deps in
    dvc.lock, or a change to it would leave the stage's outputs stale."""
    lock = yaml.safe_load(runs["locks"]["first"])
    traces = [json.loads(p.read_text()) for p in sorted(runs["trace"].glob("*.json"))]
    ran = {" ".join(t["argv"]) for t in traces}
    for name, stage in lock["stages"].items():     # every stage left a trace
        assert stage["cmd"].removeprefix("python ") in ran, name
    assert undeclared(lock, traces) == {}


def test_the_dependency_check_catches_an_undeclared_param_and_module():
    lock = {"stages": {"train@cnn-all": {
        "cmd": "python stages/train.py cnn all",
        "deps": [{"path": "stages/train.py"}, {"path": "src/speech_emotion/models"}],
        "params": {"params.yaml": {"train.epochs": 1, "cnn": {}}}}}}
    trace = {"argv": ["stages/train.py", "cnn", "all"],
             "params": ["train.epochs", "cnn.dropout", "train.utterance_norm"],
             "modules": ["src/speech_emotion/__init__.py", "src/speech_emotion/models/cnn.py",
                         "src/speech_emotion/metrics.py"]}
    assert undeclared(lock, [trace]) == {"train@cnn-all": {
        "params": ["train.utterance_norm"], "deps": ["src/speech_emotion/metrics.py"]}}


def test_a_param_that_train_reads_marks_every_train_cell_changed(runs):
    """`train.utterance_norm` is read in training (the normalisation); once it was not
    declared, and `dvc exp run -S train.utterance_norm=bins` kept the old models."""
    project = runs["second"]
    before = (project / "params.yaml").read_text()
    write_params(project, {"train.utterance_norm": "bins"})
    try:
        status = json.loads(dvc(project, "status", "--json"))
    finally:
        (project / "params.yaml").write_text(before)
    assert {name for name in status if name.startswith("train@")} == {
        f"train@{cell}" for cell in CELLS}
    assert all({"changed deps": {"params.yaml": {"train": "modified"}}} in status[f"train@{cell}"]
               for cell in CELLS), status
