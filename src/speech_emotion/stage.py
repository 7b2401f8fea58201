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
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import params as params_module
from .params import Params


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
    `<stage>: <message>`, and exit status 1."""
    name = name or Path(sys.argv[0]).stem
    try:
        main()
    except Exception as err:                 # re-raised unless it is one of ours
        if not is_user_error(err):
            raise
        message = str(err)
        _close_progress_bars()
        print(message if message.startswith(f"{name}: ") else f"{name}: {message}",
              file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _close_progress_bars() -> None:
    """Close the progress bars an error left open (the traceback holds them), so that the
    message starts a line of its own and no bar is drawn again after it."""
    tqdm = sys.modules.get("tqdm")             # none imported: none open
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()
