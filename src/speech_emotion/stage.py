"""The opening that the matrix stage scripts (train, represent, probe) share.

    name, subset, p = stage.cell_arguments(__doc__, "model", threads=lambda p: p.train.threads)

reads the cell from the command line (`python stages/train.py cnn all`), loads and checks
params.yaml, and holds torch to the section's `threads` (0: torch's default).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

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
