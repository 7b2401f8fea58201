"""Loading and validating `params.yaml`, once, in one place.

Every section of `params.yaml` is a frozen dataclass. Fields have no defaults on purpose:
`params.yaml` is the one home of every hyperparameter, so a missing key is an error, and
so is an unknown key or a value of the wrong type; each error names the key.

This module imports no torch: the models import their configs from here, never the other
way round, so loading params is cheap.

Every dataclass loaded from `params.yaml` records the dotted key of each field that is read
(`reads()`), so a test can check that a stage declares in `dvc.yaml` every param it reads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from .ravdess import SUBSETS

DEFAULT_PATH = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is malformed; the message names the key and the file."""


_READS: set[str] = set()


def reads() -> list[str]:
    """The dotted keys of every param read so far in this process, e.g. `train.optim.lr`."""
    return sorted(_READS)


class Section:
    """Base of the params dataclasses: a field read from a loaded section is recorded.

    `from_dict` tags each section (and nested section) with its dotted key; dataclasses
    built by hand (tests) or from a checkpoint carry no tag and record nothing. Reads of a
    nested section record its leaves, not the section itself.
    """

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name[0] != "_":
            key = object.__getattribute__(self, "__dict__").get("_key")
            if key is not None and name in type(self).__dataclass_fields__ \
                    and not isinstance(value, Section):
                _READS.add(f"{key}.{name}")
        return value


def _tag(section: Section, key: str) -> None:
    """Mark `section` (and its nested sections) as loaded from `key` of params.yaml."""
    object.__setattr__(section, "_key", key)
    for field in dataclasses.fields(section):
        value = object.__getattribute__(section, field.name)
        if isinstance(value, Section):
            _tag(value, f"{key}.{field.name}")


# ---------------------------------------------------------------- data (download, labels)
@dataclass(frozen=True)
class ZenodoParams(Section):
    url: str
    md5: str
    retries: int
    timeout_s: float


@dataclass(frozen=True)
class SyntheticParams(Section):
    actors: int | list[int]      # a count n (actors 1..n) or the actor numbers to make
    seed: int


@dataclass(frozen=True)
class DataParams(Section):
    source: Literal["synthetic", "zenodo", "local"]
    local_path: str | None
    zenodo: ZenodoParams
    synthetic: SyntheticParams


# ---------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureParams(Section):
    kind: Literal["logmel", "mfcc"]
    sample_rate: int
    clip: Literal["trim", "offset"]
    duration_s: float
    offset_s: float
    trim_db: float
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    n_mfcc: int
    top_db: float
    batch_size: int


# ---------------------------------------------------------------- speaker-independent folds
@dataclass(frozen=True)
class SplitParams(Section):
    protocol: Literal["emobox", "loso"]
    folds: list[int]
    validation_actors: int
    seed: int


# ---------------------------------------------------------------- descriptive analysis
@dataclass(frozen=True)
class DescribeParams(Section):
    example_actor: int           # whose utterances the example figure shows
    example_intensity: Literal["normal", "strong"]  # neutral falls back to normal
    pitch_min_hz: float          # YIN search range
    pitch_max_hz: float
    yin_threshold: float         # YIN dip threshold: lower = stricter voicing
    dpi: int                     # figure resolution (sizes in describe.FIGURES)


# ---------------------------------------------------------------- the dvc.yaml matrices
@dataclass(frozen=True)
class CellsParams(Section):
    """Which cells the train/evaluate and represent/probe matrices of dvc.yaml run. A section
    of its own, so that a stage can depend on `train` or `represent` as a whole while
    changing the matrix adds or drops cells without re-running the others."""

    models: list[str]            # classifiers (train@ / evaluate@): sections of params.yaml
    subsets: list[str]           # intensity subsets of the classifiers
    variants: list[Literal["logmel_stats", "beta_vae", "fhvae", "ss_fhvae"]]  # represent@ / probe@
    variant_subsets: list[str]   # intensity subsets of the representations

    def __post_init__(self):
        for key, values, known in (("models", self.models, MODEL_CONFIGS),
                                   ("subsets", self.subsets, SUBSETS),
                                   ("variant_subsets", self.variant_subsets, SUBSETS)):
            unknown = [v for v in values if v not in known]
            if unknown:
                raise ParamsError(f"cells.{key}: unknown {unknown}; known: {list(known)}")


# ---------------------------------------------------------------- the classifiers' sections
@dataclass(frozen=True)
class CNNConfig(Section):
    """`cnn`: the base CNN (models/cnn.py)."""

    channels: list[int]      # output channels of each conv block, e.g. [16, 32, 64]
    kernel_size: int         # square conv kernel, odd
    pool: int                # max-pool size (both axes) after each block
    dropout: float           # after each block
    classifier_dropout: float
    deltas: int              # 0, 1 (delta) or 2 (delta + delta-delta) extra input channels


@dataclass(frozen=True)
class CNNTransformerConfig(Section):
    """`cnn_transformer`: parallel CNN branches + a Transformer (models/cnn_transformer.py)."""

    channels: list[int]       # conv channels per block, shared by every branch
    kernel_sizes: list[int]   # one conv branch per entry (its square, odd kernel)
    pool: int                 # max-pool size after each conv block
    conv_dropout: float
    time_pool: int            # max-pool over frames before the Transformer
    d_model: int
    n_heads: int
    n_layers: int
    dim_feedforward: int
    transformer_dropout: float
    positional: bool          # add sinusoidal position encodings to the frame sequence
    classifier_dropout: float
    branch_dropout: float     # training: P(an utterance loses one branch's embedding)
    transformer_lr_scale: float  # training: the Transformer branch's share of train.optim.lr
    deltas: int               # 0, 1 or 2 extra input channels (time derivatives)


# model name -> its config; the name is also its params.yaml section and its module in
# speech_emotion.models (which maps the same names to the nn.Module classes)
MODEL_CONFIGS: dict[str, type] = {"cnn": CNNConfig, "cnn_transformer": CNNTransformerConfig}


# ---------------------------------------------------------------- training (classifiers)


@dataclass(frozen=True)
class SpecAugmentParams(Section):
    enabled: bool
    freq_mask: int               # widest frequency mask, in bins (torchaudio FrequencyMasking)
    time_mask: int               # widest time mask, in frames (torchaudio TimeMasking)
    masks: int                   # masks of each kind per utterance


@dataclass(frozen=True)
class NoiseParams(Section):
    enabled: bool
    p: float                     # chance that an utterance gets noise
    snr_db_min: float            # SNR drawn uniformly from [snr_db_min, snr_db_max]
    snr_db_max: float


@dataclass(frozen=True)
class TimeShiftParams(Section):
    enabled: bool
    max_frames: int              # circular shift by up to this many frames either way


@dataclass(frozen=True)
class WarpParams(Section):
    enabled: bool
    freq: float                  # mel axis stretched by a factor in [1 - freq, 1 + freq]
    time: float                  # time axis stretched by a factor in [1 - time, 1 + time]

    def __post_init__(self):
        for key in ("freq", "time"):
            if not 0 <= getattr(self, key) < 1:
                raise ParamsError(f"train.augment.warp.{key} must be in [0, 1) (a stretch "
                                  f"factor 1 +/- it must stay positive), got {getattr(self, key)}")


@dataclass(frozen=True)
class AugmentParams(Section):
    spec_augment: SpecAugmentParams
    noise: NoiseParams
    time_shift: TimeShiftParams
    warp: WarpParams
    mixup_alpha: float           # Beta(alpha, alpha) mixup of batches; 0 = off


@dataclass(frozen=True)
class OptimParams(Section):
    name: Literal["adamw", "sgd"]
    lr: float                    # peak learning rate
    weight_decay: float
    momentum: float              # sgd only
    schedule: Literal["constant", "cosine"]  # after a linear warm-up
    warmup_epochs: int
    grad_clip: float             # max gradient norm; 0 = off


@dataclass(frozen=True)
class TrainParams(Section):
    seed: int                    # weights, shuffling and augmentation
    ensemble: int                # models per fold, seeds seed .. seed + ensemble - 1;
                                 # their class probabilities are averaged
    device: Literal["auto", "cpu", "cuda", "mps"]  # auto: CUDA, then MPS, then CPU
    threads: int                 # torch CPU threads per process; 0 = torch's default
    amp: bool                    # mixed precision (CUDA only)
    channels_last: bool          # conv models in channels-last memory format (speed;
                                 # other float sums, so other weights than false)
    epochs: int                  # at most (ua | loss); every one runs under none
    batch_size: int              # global: split over the processes under torchrun
    patience: int                # monitor ua | loss only: epochs without validation
                                 # improvement before stopping
    monitor: Literal["ua", "loss", "none"]  # the validation figure for early stopping and
                                 # selection; none: no selection, the validation actors
                                 # train too, every epoch runs and the last one is kept
    label_smoothing: float
    class_weighting: Literal["none", "balanced"]
    utterance_norm: Literal["none", "level", "bins"]  # each utterance's own mean taken away
    optim: OptimParams
    augment: AugmentParams

    def __post_init__(self):
        if self.ensemble < 1:
            raise ParamsError(f"train.ensemble must be at least 1, got {self.ensemble}")


# ---------------------------------------------------------------- representation learning
@dataclass(frozen=True)
class LogmelStatsParams(Section):
    statistics: list[Literal["mean", "std"]]  # per-bin statistics over frames (the baseline)


@dataclass(frozen=True)
class BetaVAEParams(Section):
    epochs: int
    lr: float                    # Adam
    channels: list[int]          # conv channels; each conv halves mel bins and frames
    latent_dim: int
    beta: float                  # weight of the KL term


@dataclass(frozen=True)
class FHVAEParams(Section):
    epochs: int
    lr: float                    # Adam
    hidden: int                  # LSTM units of the two encoders and the decoder
    z1_dim: int                  # segment-level latent
    z2_dim: int                  # sequence-level latent
    z2_prior_std: float          # p(z2 | mu2) = N(mu2, z2_prior_std^2)
    mu2_prior_std: float         # p(mu2) = N(0, mu2_prior_std^2)
    alpha: float                 # weight of the discriminative term log p(utterance | z2)
    supervised_weight: float     # emotion head on z2: 0 for fhvae, > 0 for ss_fhvae


@dataclass(frozen=True)
class RepresentParams(Section):
    segment_frames: int          # frames per segment, non-overlapping
    batch_size: int              # segments per step
    transductive: bool           # test actors' audio (never labels) in VAE training
    device: Literal["auto", "cpu", "cuda", "mps"]
    threads: int                 # torch CPU threads per process; 0 = torch's default
    seed: int
    logmel_stats: LogmelStatsParams
    beta_vae: BetaVAEParams
    fhvae: FHVAEParams
    ss_fhvae: FHVAEParams


@dataclass(frozen=True)
class ProbeParams(Section):
    C: float                     # inverse L2 strength of the logistic regression
    max_iter: int
    class_weight: Literal["none", "balanced"]
    speaker_fit_repetition: Literal[1, 2]  # speaker probe: fit on this repetition
    tsne_perplexity: float       # the t-SNE picture
    seed: int                    # t-SNE


@dataclass(frozen=True)
class EvaluateParams(Section):
    shifts: list[int]            # test-time augmentation: frames each scored copy is shifted

    def __post_init__(self):
        if not self.shifts:
            raise ParamsError("evaluate.shifts: give at least one shift ([0]: no test-time "
                              "augmentation)")


SECTIONS: dict[str, type] = {
    "cells": CellsParams,
    "data": DataParams,
    "features": FeatureParams,
    "split": SplitParams,
    "describe": DescribeParams,
    "represent": RepresentParams,
    "probe": ProbeParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    **MODEL_CONFIGS,
}


# ---------------------------------------------------------------- loading
def load(path: str | Path = DEFAULT_PATH, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate params.yaml. `overrides` maps dotted keys to values (for tests)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return from_dict(raw, source=str(path))


def from_dict(raw: Mapping[str, Any], source: str = "params") -> Params:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{source}: unknown section(s) {', '.join(unknown)}; "
                          f"known: {', '.join(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        if name not in raw:
            raise ParamsError(f"{source}: missing section '{name}'")
        sections[name] = convert(raw[name], cls, name, source)
        _tag(sections[name], name)
    return Params(sections)


class Params:
    """The validated params: `params.features.n_mels`, `params.section("train")`."""

    def __init__(self, sections: dict[str, Any]):
        self._sections = sections

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def section(self, name: str) -> Any:
        return self._sections[name]

    def as_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(value) for name, value in self._sections.items()}


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def convert(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against the type hint `hint`, recursing into dataclasses and lists;
    `key` and `source` name it in errors. Also validates a checkpoint's stored configs."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {value!r}")
        hints = typing.get_type_hints(hint)
        fields = [f.name for f in dataclasses.fields(hint)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            names = ", ".join(f"{key}.{u}" for u in unknown)
            raise ParamsError(f"{source}: unknown key(s) {names}")
        missing = [f for f in fields if f not in value]
        if missing:
            names = ", ".join(f"{key}.{m}" for m in missing)
            raise ParamsError(f"{source}: missing key(s) {names}")
        return hint(**{f: convert(value[f], hints[f], f"{key}.{f}", source) for f in fields})
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return convert(value, option, key, source)
            except ParamsError as err:
                errors.append(str(err))
        raise ParamsError(f"{source}: '{key}' = {value!r} is none of {_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{source}: '{key}' = {value!r}, expected one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{source}: '{key}' must be a list, got {value!r}")
        return [convert(item, args[0], f"{key}[{i}]", source) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return {k: convert(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"{source}: '{key}' must be null, got {value!r}")
        return None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ParamsError(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported type hint {hint!r} for {key}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
