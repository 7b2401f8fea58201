"""What a stage run used: the params it read and the package modules it imported.

Set `SPEECH_EMOTION_TRACE=<folder>` and every process that imports `speech_emotion` writes
`<folder>/<pid>.json` when it exits:

    {"argv": ["stages/train.py", "cnn", "all"],
     "params": ["features.n_mels", "split.folds", "train.epochs", ...],
     "modules": ["src/speech_emotion/training.py", ...]}       (paths relative to the cwd)

tests/test_reproduction.py runs the pipeline with it and checks each record against the
stage's `params` and `deps` in dvc.lock, so a param or module that a stage uses but does not
declare (and whose change would leave stale outputs) fails the suite.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

ENV = "SPEECH_EMOTION_TRACE"


def install(folder: str | Path) -> None:
    """Write this process's record into `folder` at exit."""
    atexit.register(write, Path(folder))


def record() -> dict[str, list[str]]:
    params = sys.modules.get("speech_emotion.params")   # none: the run read no params
    cwd = Path.cwd()
    modules = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "speech_emotion" or name.startswith("speech_emotion.")) and path:
            path = Path(path).resolve()
            modules.append(path.relative_to(cwd).as_posix() if path.is_relative_to(cwd)
                           else path.as_posix())
    return {"argv": [Path(sys.argv[0]).as_posix(), *sys.argv[1:]],
            "params": params.reads() if params else [], "modules": sorted(modules)}


def write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}.json").write_text(json.dumps(record(), indent=1))
