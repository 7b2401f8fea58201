"""Speech emotion recognition on RAVDESS: a reproducible DVC pipeline."""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("SPEECH_EMOTION_TRACE"):     # tests: record what each stage run used
    from . import trace as _trace

    _trace.install(_os.environ["SPEECH_EMOTION_TRACE"])
