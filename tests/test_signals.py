"""Signals, a parent's death and file-size limits: a stage stops cleanly, leaves nothing.

Each case runs a real process: a small stage script (written here) under `stage.run`, as
the scripts in stages/ are, or `dvc repro` of a one-stage pipeline, and signals it.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from speech_emotion import atomic, stage

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="signals, /proc and a parent-death signal: Linux")

# A stage as train.py writes its cell: two folder outputs, the second inside the first's
# block, with a forked pool beside them, busy (`TASKS`: two sleeps) or idle (none). It
# records its pid and its workers' pids, then works (sleeps) for `SECONDS`, then writes.
WRITER = """
import os, sys, time
from pathlib import Path
from speech_emotion import atomic, stage
from speech_emotion.pool import fork_pool

SECONDS = {seconds}
TASKS = {tasks}

def main():
    with fork_pool(2) as pool, atomic.atomic_dir("models/cnn-all") as out, \\
            atomic.atomic_dir("logs/train/cnn-all") as logs:
        (out / "fold1.pt").write_text("weights")
        (logs / "summary.json").write_text("{{}}")
        pool.map_async(time.sleep, TASKS)
        pids = [os.getpid(), *(w.pid for w in pool._pool)]
        Path("pids").write_text(" ".join(map(str, pids)))
        for _ in range(int(SECONDS * 10)):
            time.sleep(0.1)
        pool.terminate()

stage.run(main, "train")
"""


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if ".tmp-" in p.name or ".old-" in p.name)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(condition, timeout: float = 15) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def writer(seconds: float, busy: bool = True) -> str:
    return WRITER.format(seconds=seconds, tasks=[60, 60] if busy else [])


def start_writer(folder: Path, seconds: float = 30, busy: bool = True,
                 **popen) -> tuple[subprocess.Popen, list[int]]:
    (folder / "writer.py").write_text(writer(seconds, busy))
    process = subprocess.Popen([sys.executable, "writer.py"], cwd=folder, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    assert wait_for(lambda: (folder / "pids").exists() or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    return process, [int(p) for p in (folder / "pids").read_text().split()]


def communicate(process: subprocess.Popen, pids=(), timeout: float = 30) -> tuple[str, str]:
    """`process.communicate()`; on a timeout (a hung stage) it and `pids` are killed."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in (process.pid, *pids):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        raise


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


# ---------------------------------------------------------------- SIGTERM and Ctrl-C
@pytest.mark.parametrize("busy", [True, False], ids=["busy workers", "idle workers"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_write_removes_the_temporary_outputs_in_one_line(signum, busy, tmp_path):
    """SIGTERM (or Ctrl-C) to the process group while the outputs are half-written: the
    temporary folders are removed, the workers are quiet, one line, exit 128 + signal.
    Idle workers wait for a task holding the queue's lock: killed by the group's signal,
    they would leave the stage hung in the pool's terminate()."""
    process, pids = start_writer(tmp_path, busy=busy, start_new_session=True)
    assert len(leftovers(tmp_path)) == 2                     # .cnn-all.tmp-<pid>, twice
    os.killpg(process.pid, signum)
    _, err = communicate(process, pids)
    assert process.returncode == 128 + signum
    how = "" if signum == signal.SIGINT else " (SIGTERM)"
    assert err == f"train: interrupted{how}\n"
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "models" / "cnn-all").exists()
    assert wait_for(lambda: not any(alive(p) for p in pids))


def test_ctrl_c_during_encode_with_two_workers_is_one_line(tmp_path):
    """The encode stage's own pool (encoded.encode_files), the encoder replaced by a slow
    stand-in: Ctrl-C reaches the stage and both workers; one line, exit 130."""
    (tmp_path / "encode.py").write_text(textwrap.dedent("""
        import dataclasses, sys, time
        import numpy as np
        from speech_emotion import encoded, params, stage

        def slow(path, encoder, keep_frames, changes=(), grid=0):
            time.sleep(0.2)
            return encoded.Encoding(np.zeros((2, 2, 8), np.float32), None)

        encoded.encode_file = slow

        def main():
            p = dataclasses.replace(params.load(sys.argv[1]).encode, workers=2)
            print("encoding", flush=True)
            encoded.encode_files([f"{i}.wav" for i in range(1000)], p, encoder=None)

        stage.run(main, "encode")
        """))
    process = subprocess.Popen([sys.executable, "encode.py", str(REPO / "params.yaml")],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stdout.readline() == "encoding\n"
    time.sleep(1.5)                                          # the workers are encoding
    os.killpg(process.pid, signal.SIGINT)
    _, err = communicate(process)
    assert process.returncode == 130
    assert "Traceback" not in err and "Error" not in err, err
    assert err.rstrip("\n").splitlines()[-1] == "encode: interrupted"
    assert err.endswith("\nencode: interrupted\n")           # a line of its own after the bar


# ---------------------------------------------------------------- a parent's death
@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/sh"])
def test_a_stage_dies_with_dvc_repro(shell, tmp_path):
    """SIGTERM to `dvc repro` alone: DVC exits at once; the stage (and its workers) must
    not live on to write its output after DVC is gone. DVC runs the command through
    $SHELL -c: bash replaces itself with the stage, dash stays between them."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent("""
        stages:
          train:
            cmd: python writer.py
            outs:
              - models/cnn-all
        """))
    (tmp_path / "writer.py").write_text(writer(2))
    env = dict(os.environ, SHELL=shell,
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=env, check=True)
    dvc = subprocess.Popen(["dvc", "repro", "-q"], cwd=tmp_path, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / "pids").exists() or dvc.poll() is not None, 60)
    assert dvc.poll() is None, dvc.communicate()
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    dvc.send_signal(signal.SIGTERM)
    communicate(dvc)
    outlived = not wait_for(lambda: not any(alive(p) for p in pids), 10)
    for pid in filter(alive, pids) if outlived else ():
        os.kill(pid, signal.SIGKILL)
    assert not outlived, "the stage outlived DVC"
    time.sleep(2.5)                                          # when it would have written
    assert not (tmp_path / "models" / "cnn-all").exists()
    assert leftovers(tmp_path) == []


def test_workers_die_with_a_killed_stage_and_ignore_ctrl_c(tmp_path):
    """SIGKILL cannot be caught: the workers still go (their parent-death signal); a
    SIGINT to a worker alone does nothing (the stage speaks for the pool)."""
    process, pids = start_writer(tmp_path)
    os.kill(pids[1], signal.SIGINT)
    time.sleep(0.5)
    assert alive(pids[1])
    process.kill()
    communicate(process, pids)
    assert wait_for(lambda: not any(alive(p) for p in pids), 10)


def test_under_nohup_a_stage_run_by_hand_outlives_its_shell(tmp_path):
    """`nohup python stages/train.py ... &` asks to outlive the shell: no parent-death
    signal then (under DVC there is one whatever SIGHUP's disposition)."""
    (tmp_path / "writer.py").write_text(writer(1))
    shell = subprocess.Popen(["/bin/sh", "-c", f"nohup {sys.executable} writer.py "
                              ">/dev/null 2>&1 & wait"], cwd=tmp_path)
    try:
        assert wait_for(lambda: (tmp_path / "pids").exists())
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    finally:
        shell.kill()
        shell.wait()
    assert wait_for(lambda: (tmp_path / "models" / "cnn-all" / "fold1.pt").exists())
    assert wait_for(lambda: not any(alive(p) for p in pids))
    assert leftovers(tmp_path) == []


def test_stage_run_restores_the_signal_handlers_it_replaced():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stage.run(lambda: None, "probe")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# ---------------------------------------------------------------- leftovers
def test_a_stage_removes_leftovers_of_dead_writers_when_it_starts(tmp_path, monkeypatch):
    """A killed train cell's `.cnn-all.tmp-<pid>` in models/ and logs/train/ (DVC may
    restore the cell from its cache, so its own writes never come): whichever stage runs
    next removes them, but not those of a process still running."""
    dead, living = dead_pid(), os.getpid()
    stale = [tmp_path / "models" / f".cnn-all.tmp-{dead}",
             tmp_path / "logs" / "train" / f".cnn-all.tmp-{dead}",
             tmp_path / "models" / f".cnn-all.old-{dead}",
             tmp_path / "metrics" / f".cnn-all.json.tmp-{dead}"]
    kept = [tmp_path / "models" / f".cnn-all.tmp-{living}", tmp_path / "models" / "cnn-all",
            tmp_path / "models" / ".keep.tmp-x"]
    for folder in stale[:3] + kept[:2]:
        (folder / "plots").mkdir(parents=True)
    for path in (stale[3], kept[2]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    monkeypatch.chdir(tmp_path)
    stage.run(lambda: None, "report")
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)


# ---------------------------------------------------------------- git/DVC bookkeeping
def test_replacing_a_folder_keeps_dvcs_gitignore_files(tmp_path):
    """`python stages/train.py cnn all` by hand (the torchrun recipe) replaces
    logs/train/cnn-all/ whole; DVC's .gitignore files in it stay, so summary.json and
    plots/metrics/ are not shown as untracked."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    logs = tmp_path / "logs" / "train" / "cnn-all"
    (logs / "plots" / "metrics").mkdir(parents=True)
    (logs / ".gitignore").write_text("/summary.json\n")
    (logs / "plots" / ".gitignore").write_text("/metrics\n")
    (logs / "summary.json").write_text("{}")
    (logs / "plots" / "metrics" / "old.tsv").write_text("old")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   cwd=tmp_path, check=True)
    status = ["git", "status", "--porcelain", "--untracked-files=all"]
    assert subprocess.run(status, cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout == ""
    with atomic.atomic_dir(logs) as tmp:
        (tmp / "plots" / "metrics" / "fold1").mkdir(parents=True)
        (tmp / "plots" / "metrics" / "fold1" / "loss.tsv").write_text("step\tloss\n")
        (tmp / "summary.json").write_text('{"cell": "cnn-all"}')
    assert subprocess.run(status, cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout == ""
    assert (logs / ".gitignore").read_text() == "/summary.json\n"
    assert not (logs / "plots" / "metrics" / "old.tsv").exists()   # the output is new, whole
    assert leftovers(tmp_path) == []


def test_a_new_folders_own_gitignore_wins(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".gitignore").write_text("old\n")
    (tmp_path / "out" / "gone").mkdir()
    (tmp_path / "out" / "gone" / ".gitignore").write_text("/x\n")
    with atomic.atomic_dir(tmp_path / "out") as tmp:
        (tmp / ".gitignore").write_text("new\n")
    assert (tmp_path / "out" / ".gitignore").read_text() == "new\n"
    assert not (tmp_path / "out" / "gone").exists()         # no folder made for a leftover


# ---------------------------------------------------------------- a file-size limit
def test_a_file_size_limit_while_writing_encoded_h5_names_the_output(tmp_path):
    """`ulimit -f`: h5py fails with a RuntimeError quoting errno 27; the stage says which
    output was not written and why, as for a full disk, and leaves no temporary file."""
    (tmp_path / "encode.py").write_text(textwrap.dedent("""
        import sys
        import numpy as np
        import pandas as pd
        from speech_emotion import encoded, params, stage
        from speech_emotion.paths import ENCODED
        from speech_emotion.store import CODE_COLUMNS

        def main():
            table = pd.DataFrame({"path": ["a.wav", "b.wav"], "stem": ["a", "b"],
                                  **{code: [1, 1] for code in CODE_COLUMNS}})
            encodings = [encoded.Encoding(np.ones((4, 2, 8192), np.float32), None)] * 2
            encoded.write(ENCODED, table, encodings, params.load(sys.argv[1]).encode,
                          {"weights_sha256": "0" * 64, "n_states": 4, "d_model": 8192})

        stage.run(main, "encode")
        """))

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, resource.RLIM_INFINITY))

    done = subprocess.run([sys.executable, "encode.py", str(REPO / "params.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_file_size)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"OSError: \[Errno 27\] File too large \(over the file-size limit, "
                        r"`ulimit -f`, .*\); not written: 'data/processed/encoded.h5'", last), last
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "data" / "processed" / "encoded.h5").exists()


def test_a_library_error_quoting_a_full_disk_names_the_output(tmp_path):
    with pytest.raises(OSError) as err:
        with atomic.atomic_path(tmp_path / "features.h5") as tmp:
            tmp.write_bytes(b"half")
            try:
                raise OSError(28, "Can't write data (file write failed: errno = 28, ...)")
            except OSError:
                raise RuntimeError("Can't decrement id ref count (errno = 28)") from None
    assert err.value.errno == 28 and err.value.filename == str(tmp_path / "features.h5")
    assert str(err.value).startswith("[Errno 28] No space left on device; not written")
    assert leftovers(tmp_path) == []
