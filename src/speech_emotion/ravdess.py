"""The RAVDESS corpus schema: the one home of every RAVDESS fact.

A RAVDESS file name has seven two-digit codes, ``MM-VV-EE-II-SS-RR-AA``:
modality, vocal channel, emotion, intensity, statement, repetition, actor.
This project uses the audio-only speech part: modality 03, vocal channel 01.

Livingstone SR, Russo FA (2018) The Ryerson Audio-Visual Database of Emotional
Speech and Song (RAVDESS). PLoS ONE 13(5): e0196391. CC BY-NC-SA 4.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

MODALITIES = {1: "full-AV", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
EMOTIONS = {
    1: "neutral",
    2: "calm",
    3: "happy",
    4: "sad",
    5: "angry",
    6: "fearful",
    7: "disgust",
    8: "surprised",
}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
REPETITIONS = {1: "1st", 2: "2nd"}
N_ACTORS = 24
ACTORS = tuple(range(1, N_ACTORS + 1))

AUDIO_MODALITY = 3
SPEECH_CHANNEL = 1
NEUTRAL = 1
STRONG = 2

EMOTION_NAMES = tuple(EMOTIONS[code] for code in sorted(EMOTIONS))
# Neutral is recorded at normal intensity only, so the strong subset has 7 classes.
SUBSETS = {
    "all": EMOTION_NAMES,
    "strong": tuple(name for name in EMOTION_NAMES if name != EMOTIONS[NEUTRAL]),
    "normal": EMOTION_NAMES,
}
SUBSET_INTENSITY = {"all": None, "strong": "strong", "normal": "normal"}

AUDIO_SUFFIXES = (".wav", ".flac")
ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


GENDERS = ("male", "female")


def gender(actor: int) -> str:
    """Odd-numbered actors are male, even-numbered actors female."""
    return "male" if actor % 2 == 1 else "female"


def actor_dir(actor: int) -> str:
    return f"Actor_{actor:02d}"


class RavdessNameError(ValueError):
    """A file name that is not an audio-only RAVDESS speech utterance."""


@dataclass(frozen=True, order=True)
class Utterance:
    """The seven codes of one RAVDESS file name."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def stem(self) -> str:
        codes = (self.modality, self.vocal_channel, self.emotion, self.intensity,
                 self.statement, self.repetition, self.actor)
        return "-".join(f"{code:02d}" for code in codes)

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion]

    @property
    def intensity_name(self) -> str:
        return INTENSITIES[self.intensity]

    @property
    def statement_text(self) -> str:
        return STATEMENTS[self.statement]

    @property
    def gender(self) -> str:
        return gender(self.actor)


# The seven codes in file-name order: data.csv's code columns and features.h5's index fields.
CODE_COLUMNS = tuple(field.name for field in fields(Utterance))


def parse_name(name: str | Path) -> Utterance:
    """Parse and validate a RAVDESS audio-only speech file name (with or without suffix).

    Raises RavdessNameError that says what is wrong with the name.
    """
    stem = Path(name).name
    for suffix in AUDIO_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    match = _NAME.match(stem)
    if not match:
        raise RavdessNameError(f"{name}: not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA)")
    utt = Utterance(*(int(code) for code in match.groups()))
    problems = []
    if utt.modality != AUDIO_MODALITY:
        kind = MODALITIES.get(utt.modality, f"unknown modality {utt.modality:02d}")
        problems.append(f"modality {utt.modality:02d} ({kind}), expected 03 (audio-only)")
    if utt.vocal_channel != SPEECH_CHANNEL:
        kind = VOCAL_CHANNELS.get(utt.vocal_channel, "unknown")
        problems.append(f"vocal channel {utt.vocal_channel:02d} ({kind}), expected 01 (speech)")
    for field, table in (("emotion", EMOTIONS), ("intensity", INTENSITIES),
                         ("statement", STATEMENTS), ("repetition", REPETITIONS)):
        if getattr(utt, field) not in table:
            problems.append(f"{field} code {getattr(utt, field):02d} out of range")
    if utt.actor not in ACTORS:
        problems.append(f"actor code {utt.actor:02d} out of range 01-{N_ACTORS}")
    if utt.emotion == NEUTRAL and utt.intensity == STRONG:
        problems.append("neutral has no strong intensity in RAVDESS")
    if problems:
        raise RavdessNameError(f"{name}: " + "; ".join(problems))
    return utt


def is_speech_audio_name(name: str | Path) -> bool:
    """True for a file that looks like audio-only speech (03-01-*) audio, valid or not."""
    name = Path(name).name
    return name.startswith("03-01-") and name.lower().endswith(AUDIO_SUFFIXES)


def full_corpus() -> list[Utterance]:
    """Every utterance of the audio-only speech set: 60 per actor, 1440 in all."""
    return [
        Utterance(AUDIO_MODALITY, SPEECH_CHANNEL, emotion, intensity, statement, repetition, actor)
        for actor in ACTORS
        for emotion in EMOTIONS
        for intensity in INTENSITIES
        if not (emotion == NEUTRAL and intensity == STRONG)
        for statement in STATEMENTS
        for repetition in REPETITIONS
    ]
