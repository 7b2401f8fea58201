"""What the stage scripts share: their entry point and the matrix stages' opening.

    if __name__ == "__main__":
        stage.run(main)

runs a stage's `main` and turns the package's own errors (a bad params.yaml, a broken
audio file, an impossible fold, ...) into one line on stderr and exit status 1, with no
traceback: they are the user's to fix, and the message says what. Any other exception is
a bug and keeps its traceback.

    name, subset, p = stage.cell_arguments(__doc__, "model", threads=lambda p: p.train.threads)

reads the cell from the command line (`python stages/train.py cnn all`), loads and checks
params.yaml, and holds torch to the section's `threads` (0: torch's default).

A stage dies with the process that started it (`dvc repro`, torchrun, a shell): were it
to live on, it would write its outputs after DVC has gone, with no lock, beside the next
`dvc repro`. SIGTERM and SIGINT end it as an error does: its temporary outputs are
removed, one line says `<stage>: interrupted`, exit status 128 + the signal (130 for
Ctrl-C). When it starts, it removes what killed stages left in the output folders.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from . import atomic, params as params_module, paths
from .params import Params

# The folders the pipeline's outputs are written into (dvc.yaml's outs): where killed
# writers leave `.<name>.tmp-<pid>` and `.<name>.old-<pid>`.
OUTPUT_FOLDERS = tuple(dict.fromkeys(
    [paths.RAW.parent, paths.DATA_CSV.parent, paths.FEATURES.parent, paths.ENCODED.parent,
     paths.FIGURES.parent, paths.SUMMARY.parent, paths.RESULTS.parent, paths.MODELS,
     paths.METRICS, paths.TRAIN_LOGS, paths.CONFUSION, paths.RECONSTRUCTIONS,
     paths.LATENT_PLOTS, paths.EXTERNAL_METRICS.parent, paths.EXTERNAL_PLOTS.parent,
     paths.PREDICTIONS]))
# Shells that DVC may run a stage's command with (`$SHELL -c <cmd>`); bash replaces itself
# with the command, dash does not, and stays between DVC and the stage.
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "ash", "busybox", "fish"})


def cell_arguments(doc: str | None, kind: str,
                   threads: Callable[[Params], int] | None = None) -> tuple[str, str, Params]:
    """`(<kind>, subset, params)` of one cell: `kind` names the first argument (model or
    variant), the second is the intensity subset."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(kind)
    parser.add_argument("subset")
    args = parser.parse_args()
    p = params_module.load()
    if threads is not None and threads(p):
        import torch

        torch.set_num_threads(threads(p))
    return getattr(args, kind), args.subset, p


def is_user_error(err: BaseException) -> bool:
    """An error class of this package (ParamsError, AudioError, SourceError, LabelsError,
    FoldError, CheckpointError, ...): raised for bad input, its message names the problem."""
    return type(err).__module__.split(".")[0] == "speech_emotion" and isinstance(err, Exception)


def run(main: Callable[[], object], name: str | None = None) -> None:
    """Run a stage's `main`; a user error ends the process with one line on stderr,
    `<stage>: <message>`, and exit status 1; SIGINT or SIGTERM (its temporary outputs
    removed first) with `<stage>: interrupted` and 128 + the signal."""
    name = name or Path(sys.argv[0]).stem
    try:
        with atomic.raise_on_signals(), _dies_with_parent():
            atomic.remove_leftovers(OUTPUT_FOLDERS)
            main()
    except KeyboardInterrupt as err:         # Ctrl-C, SIGTERM, the parent's death
        signum = getattr(err, "signum", signal.SIGINT)
        _close_progress_bars()
        how = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        print(f"{name}: interrupted{how}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum) from None
    except Exception as err:                 # re-raised unless it is one of ours
        if not is_user_error(err):
            raise
        message = str(err)
        _close_progress_bars()
        print(message if message.startswith(f"{name}: ") else f"{name}: {message}",
              file=sys.stderr, flush=True)
        raise SystemExit(1) from None


_PR_SET_PDEATHSIG, _PR_GET_PDEATHSIG = 1, 2


def _prctl(option: int, value: int | ctypes.c_int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_death_signal() -> int:
    """The signal this process gets when its parent dies (0: none, or not Linux)."""
    value = ctypes.c_int(0)
    return value.value if _prctl(_PR_GET_PDEATHSIG, ctypes.byref(value)) else 0


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Have the kernel send `signum` to this process when its parent dies (Linux; False
    elsewhere). `parent`: the pid the parent had; if it is gone already (the death came
    before the request), the signal is sent now."""
    done = _prctl(_PR_SET_PDEATHSIG, int(signum))
    if done and signum and parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return done


@contextlib.contextmanager
def _dies_with_parent() -> Iterator[None]:
    """SIGTERM to this process when its parent dies (Linux: a parent-death signal), or
    when the process that started a `sh -c` shell between them dies (polled twice a
    second). Not under `nohup` outside DVC: that asks to outlive the shell."""
    if "DVC_STAGE" not in os.environ and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        yield
        return
    parent = os.getppid()
    previous = parent_death_signal()
    die_with_parent(signal.SIGTERM, parent)
    stop = threading.Event()
    above = _shell_starter(parent)
    if above is not None:
        def watch() -> None:
            while not stop.wait(0.5):
                if os.getppid() != parent or _parent_of(parent) != above:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        die_with_parent(previous)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])        # pid (comm) state ppid ...


def _shell_starter(pid: int) -> int | None:
    """If `pid` is a shell running one command (`sh -c ...`), the pid of its parent."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"-c" not in argv[1:4] or os.path.basename(argv[0]).decode(
            errors="replace") not in SHELLS:       # DVC: $SHELL [--norc ...] -c <cmd>
        return None
    return _parent_of(pid)


def _close_progress_bars() -> None:
    """Close the progress bars an error left open (the traceback holds them), so that the
    message starts a line of its own and no bar is drawn again after it."""
    tqdm = sys.modules.get("tqdm")             # none imported: none open
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()
