"""The research workflow of the README, run for real on a tiny config in a temporary copy
of the repository: dvc repro, dvc exp run -S, dvc exp show, dvc metrics diff,
dvc params diff, dvc plots diff; and the metric names read well."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import copy_project

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# A tiny config: a few synthetic actors, one fold, one cell, tiny models, one epoch.
# Applied where the key exists in params.yaml, so sections added later need no change here
# unless they are slow by default.
TINY = {
    "data.source": "synthetic",
    "data.synthetic.actors": 4,      # fold 1 tests actor 01; 2 validation, 1 training actor
    "split.protocol": "emobox",
    "split.folds": [1],
    "features.duration_s": 1.0,
    "features.n_mels": 32,
    "cells.models": ["cnn"],
    "cells.subsets": ["all"],
    "cells.heads": [],               # no encoder: the workflow is the subject here
    "train.epochs": 1,
    "train.patience": 1,
    "train.device": "cpu",
    "cnn.channels": [4, 8],
    # The VAE probes also write metrics/*.json, so `report` pulls them in: keep them tiny.
    "cells.variants": ["logmel_stats"],
    "cells.variant_subsets": ["all"],
}
# The stages this workflow is about: report and what it needs (data, features, train,
# evaluate); the descriptive figures are left out to keep the test short.
TARGET = "report"
CELL = "cnn-all"
# The README's `dvc exp show` summary view: the headline figures, nothing per fold or class.
# (DVC matches --drop against the whole column name.)
VIEW_DROP = (r"(.*:)?((folds|classes|by_intensity|by_gender|groups|counts|duration_s|silence_s"
             r"|pitch_hz|rms_dbfs)\..*|n_utterances|representation|dimensions)")
METRICS = f"metrics/{CELL}.json"
CONFUSION = f"plots/confusion/{CELL}.json"


def _set(raw: dict, dotted: str, value) -> bool:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        if not isinstance(node.get(key), dict):
            return False
        node = node[key]
    if last not in node:
        return False
    node[last] = value
    return True


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC copy of the working tree (no data, models or venv) on the tiny config,
    with the baseline `dvc repro` run and committed."""
    # No outputs and no dvc.lock: the committed lock belongs to the default run, whose
    # outputs are not in this copy's cache.
    root = copy_project(tmp_path_factory.mktemp("workflow") / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    applied = [key for key, value in TINY.items() if _set(params, key, value)]
    assert "train.epochs" in applied, "params.yaml has no train section yet"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ,
           "PYTHONPATH": str(root / "src"),     # the copy's package, not the editable install
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org",
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}

    def run(*args, check=True):
        done = subprocess.run(list(args), cwd=root, env=env, capture_output=True, text=True,
                              timeout=900)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def dvc(*args, check=True):
        return run(sys.executable, "-m", "dvc", *args, check=check)

    run("git", "init", "-q")
    if not (root / ".dvc").is_dir():
        dvc("init", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "tiny config")
    dvc("repro", TARGET)
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "baseline run")
    return root, dvc


@pytest.fixture(scope="module")
def experiment(project):
    root, dvc = project
    dvc("exp", "run", "-S", "train.epochs=2", "-n", "two-epochs", TARGET)
    return root, dvc


def test_baseline_writes_metrics_confusion_and_results_table(project):
    root, dvc = project
    data = json.loads((root / METRICS).read_text())
    for key in ("ua", "wa", "macro_f1", "ua_sd", "n_folds", "folds", "classes",
                "by_intensity", "by_gender"):
        assert key in data
    assert data["n_folds"] == 1 and 0.0 <= data["ua"] <= 1.0
    # what ran it, with the train stage's summary too: CPU, kernels, pins
    summary = json.loads((root / f"logs/train/{CELL}/summary.json").read_text())
    for record in (data["machine"], summary["machine"]):
        assert record["torch_cpu_capability"] and record["torch"] and "pins" in record
    records = json.loads((root / CONFUSION).read_text())
    assert records and set(records[0]) == {"actual", "predicted"}
    assert len(records) == data["n_utterances"]
    assert "| cnn | all | 1 |" in (root / "reports/results.md").read_text()
    shown = dvc("metrics", "show", "--json").stdout
    assert METRICS in shown
    dvc("plots", "show", "-o", "shown_plots")
    assert (root / "shown_plots" / "index.html").is_file()


def test_exp_show_has_readable_metric_names(experiment):
    root, dvc = experiment
    table = json.loads(dvc("exp", "show", "--json").stdout)
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "metrics" and isinstance(value, dict):
                    for path, payload in value.items():
                        if path == METRICS.replace("/", os.sep) or path == METRICS:
                            names.update(_leaves(payload.get("data", {})))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(table)
    # ua_sd is null with one fold (no spread to report), which DVC shows as "-".
    assert {"ua", "wa", "macro_f1", "n_folds", "n_utterances"} <= names
    assert "folds.fold1.ua" in names and "by_gender.male.ua" in names   # actor 01 is male
    assert "by_intensity.strong.ua" in names
    assert any(re.fullmatch(r"classes\.[a-z]+\.recall", n) for n in names)
    # Readable: lower-case words joined by dots and underscores, no list indices or blanks.
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*", n) for n in names), names
    # The README's summary view: the drop pattern leaves the headline figures of each
    # metrics file (named `<file>:ua` once several files hold a `ua`) and nothing per
    # fold, class or group; --only-changed then keeps the params (and figures) that moved.
    def view(*extra):
        csv = dvc("exp", "show", "--drop", VIEW_DROP, *extra, "--csv").stdout
        header, *rows = csv.strip().splitlines()
        return header.split(","), rows

    columns, _ = view()
    headline = {c.rsplit(":", 1)[-1] for c in columns}
    assert {"ua", "wa", "macro_f1"} <= headline, columns
    assert not any(c.rsplit(":", 1)[-1].startswith(("folds.", "classes.", "by_"))
                   for c in columns), columns
    columns, rows = view("--only-changed")
    assert "train.epochs" in columns, columns
    row = next(r.split(",") for r in rows if r.startswith("two-epochs,"))
    assert row[columns.index("train.epochs")] == "2"


def test_metrics_params_and_plots_diff(experiment):
    root, dvc = experiment
    metrics = json.loads(dvc("metrics", "diff", "--all", "--json").stdout)
    assert {"ua", "wa", "macro_f1"} <= set(metrics[METRICS])
    params = json.loads(dvc("params", "diff", "--json").stdout)
    epochs = params["params.yaml"]["train.epochs"]
    assert (epochs["old"], epochs["new"]) == (1, 2)
    dvc("plots", "diff", "HEAD", "-o", "diff_plots")
    html = (root / "diff_plots" / "index.html").read_text()
    # The confusion matrix of the cell is drawn (under the title dvc.yaml gives it).
    assert "Confusion (cnn, all), normalised by actual emotion" in html
    assert "percent_of_y" in html          # the row-normalised confusion template


def test_queue_runs_experiments_in_parallel_workers(project):
    """The README's sweep: experiments queued with `dvc exp run --queue` and run by two
    `dvc queue start -j 2` workers; each lands in `dvc exp show` with its own metrics."""
    root, dvc = project
    names = {"q-dropout": "cnn.dropout=0.3", "q-smoothing": "train.label_smoothing=0.0"}
    for name, override in names.items():
        dvc("exp", "run", "--queue", "-S", override, "-n", name, TARGET)
    dvc("queue", "start", "-j", "2")
    deadline = time.monotonic() + 600
    while True:
        status = dvc("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.monotonic() < deadline, status
        time.sleep(2)
    dvc("queue", "stop", check=False)
    assert status.count("Success") >= len(names), status
    table = json.loads(dvc("exp", "show", "--json").stdout)
    found = {}

    def walk(node):
        if isinstance(node, dict):
            name = node.get("name")
            metrics = (node.get("data") or {}).get("metrics") or {}
            if name in names and METRICS in metrics:
                found[name] = metrics[METRICS]["data"]["ua"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(table)
    assert set(found) == set(names), json.dumps(table)[:3000]
    assert all(0.0 <= ua <= 1.0 for ua in found.values())


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix[:-1]


def test_exps_prints_one_readable_table(experiment):
    """`dvc exp show` is hundreds of columns; `speech-emotion exps` prints the
    changed params and every cell's ua / wa / f1, one row per experiment and cell."""
    from speech_emotion import exps

    root, dvc = experiment
    done = subprocess.run([sys.executable, "-m", "speech_emotion.exps"], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root / "src")},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = lines[0].split()               # more changed params if the queue test ran first
    assert head[0] == "experiment" and head[-4:] == ["cell", "ua", "wa", "f1"], lines
    assert "train.epochs" in head and not any(h.startswith("data.") for h in head), head
    assert max(len(line) for line in lines) <= 120
    row = next(line.split() for line in lines if line.startswith("two-epochs "))
    assert row[head.index("train.epochs")] == "2" and row[-4] == "cnn-all"
    assert all(0 <= float(x) <= 1 for x in row[-3:])
    shown = json.loads(dvc("exp", "show", "--json").stdout)
    ua = next(r for r in exps.rows(shown) if r["name"] == "two-epochs")["cells"]["cnn-all"]["ua"]
    assert row[-3] == f"{ua:.4f}"


def test_exps_table_from_json():
    from speech_emotion import exps

    shown = [{"rev": "workspace", "data": {
                "params": {"params.yaml": {"data": {"train": {"epochs": 1, "seed": 0}}}},
                "metrics": {"metrics/cnn-all.json": {"data": {"ua": 0.5, "wa": 0.25,
                                                              "macro_f1": 0.125}}}}},
             {"rev": "0123456789abcdef", "name": "main", "data": {
                "params": {"params.yaml": {"data": {"train": {"epochs": 1, "seed": 0}}}},
                "metrics": {}},
              "experiments": [{"revs": [{"rev": "fedcba9876543210", "name": "more", "data": {
                  "params": {"params.yaml": {"data": {"train": {"epochs": 3, "seed": 0}}}},
                  "metrics": {"metrics/cnn-all.json": {"data": {"ua": 0.75, "wa": 0.5,
                                                                "macro_f1": None}},
                              "metrics/fhvae-all.json": {"data": {"ua": 0.3}}}}}]}]}]
    text = exps.table(shown)
    assert "more" in text and "fhvae-all" in text and "seed" not in text
    assert [r["name"] for r in exps.rows(shown)] == ["workspace", "main", "more"]


def test_results_travel_through_a_dvc_remote_and_experiments_through_git(experiment,
                                                                          tmp_path):
    """The README's sharing recipe: `dvc push` to a remote (a local folder: a real DVC
    remote type), then a colleague's `git clone` and `dvc pull` get the committed outputs
    byte for byte (the lock's md5),
    a clean `dvc status` and a `dvc repro` that runs nothing; `dvc exp push` to a git remote
    (a bare repository) and `dvc exp pull` bring an experiment and its metrics along."""
    root, dvc = experiment
    storage, origin, clone = tmp_path / "storage", tmp_path / "origin.git", tmp_path / "clone"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "test",
           "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.org"}

    def run(cwd, *args):
        done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # --local: the remote is this machine's setting, so the shared fixture's commits stay
    # as they are (the README commits it, with `dvc remote add -d`)
    # an empty output folder (external, no corpora) travels by git as the project's does:
    # a .gitkeep, which .dvcignore keeps out of the folder's hash
    for folder in ("metrics/external", "plots/external"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / ".gitkeep").touch()
    run(root, "git", "add", "-f", "metrics/external/.gitkeep", "plots/external/.gitkeep")
    run(root, "git", "commit", "-q", "-m", "keep the empty output folders")
    dvc("remote", "add", "--local", "-d", "storage", str(storage))
    # every commit's outputs: the shared fixture's workspace holds an experiment's, and the
    # clone checks out the committed run (after a plain commit, `dvc push` is enough)
    dvc("push", "--all-commits")
    run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    run(root, "git", "push", "-q", str(origin), "HEAD:refs/heads/main")
    dvc("exp", "push", str(origin), "two-epochs")

    run(tmp_path, "git", "clone", "-q", "-b", "main", str(origin), str(clone))
    python = [sys.executable, "-m", "dvc"]
    run(clone, *python, "remote", "add", "--local", "-d", "storage", str(storage))
    # the fixture ran `report` and what it needs (not describe, encode): those stages' outputs
    run(clone, *python, "pull", "--with-deps", TARGET)
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    outs = {out["path"]: out for stage in lock["stages"].values() for out in stage.get("outs", [])}
    assert METRICS in outs and f"models/{CELL}" in outs
    for path, out in outs.items():                 # every output there, as the lock says
        if out.get("nfiles") == 0:                 # an empty folder (external: no corpora)
            continue
        assert (clone / path).exists(), path
        if (clone / path).is_file():
            assert hashlib.md5((clone / path).read_bytes()).hexdigest() == out["md5"], path
    # folders: dvc status hashes every output against the lock (and the deps too)
    status = json.loads(run(clone, *python, "status", "--with-deps", "--json", TARGET) or "{}")
    assert status == {}
    assert "up to date" in run(clone, *python, "repro", TARGET)
    run(clone, *python, "exp", "pull", str(origin), "two-epochs")
    shown = run(clone, *python, "exp", "show", "--all-commits", "--json")  # on its baseline
    assert "two-epochs" in shown and METRICS in shown
