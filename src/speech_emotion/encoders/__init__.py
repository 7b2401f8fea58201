"""Pretrained speech encoders: where their weights come from and how they are checked.

`weights.resolve(name_or_dir)` gives a verified CTranslate2 Whisper model folder. Nothing here
imports faster-whisper or CTranslate2 at import time: they are the optional `whisper` extra.
"""

from .weights import WeightsError, resolve

__all__ = ["WeightsError", "resolve"]
