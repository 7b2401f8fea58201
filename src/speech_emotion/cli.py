"""The `speech-emotion` console script: `speech-emotion predict FILE ...`,
`speech-emotion check [params.yaml]`, `speech-emotion exps`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

COMMANDS = {
    "predict": "predict the emotion of speech recordings with a trained model",
    "check": "validate params.yaml (run it before dvc repro / dvc exp run)",
    "exps": "one readable table of dvc exp show: changed params and every cell's ua/wa/f1",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="speech-emotion",
                                 description="Speech emotion recognition on RAVDESS.")
    ap.add_argument("command", choices=sorted(COMMANDS),
                    help="; ".join(f"{name}: {text}" for name, text in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        ap.print_help()
        return 0 if argv else 2
    args = ap.parse_args(argv[:1])
    if args.command == "predict":
        from . import predict
        return predict.main(argv[1:])
    if args.command == "check":
        from . import params
        return params.check(argv[1:])
    if args.command == "exps":
        from . import exps
        return exps.main(argv[1:])
    return 2  # unreachable: argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
