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
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from .ravdess import ACTORS, SUBSETS

DEFAULT_PATH = Path("params.yaml")

SEED_LIMIT = 2 ** 32     # seeds are 0 .. 2**32 - 1: numpy's legacy seed and scikit-learn's
                         # random_state take no more (torch takes 64 bits)
NAME_LIMIT = 100         # characters of a name that becomes a folder or file name
SHOWN_CHARS = 80         # characters of a value quoted in an error, then "..."


class ParamsError(ValueError):
    """params.yaml is malformed; the message names the key and the file."""


class _Repr(reprlib.Repr):
    def repr_str(self, x: str, level: int) -> str:      # the start, not reprlib's middle cut
        return repr(x[:SHOWN_CHARS + 1])


_REPR = _Repr()
_REPR.maxlevel, _REPR.maxother, _REPR.maxlong = 4, SHOWN_CHARS, SHOWN_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20


def shown(value: Any) -> str:
    """`repr(value)` for an error message, at most SHOWN_CHARS characters then `...`: a
    value may be huge (a YAML alias bomb expands to millions of items), the message stays
    one short line. reprlib bounds the work as well as the text."""
    return _cut(_REPR.repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


class FieldError(ParamsError):
    """A value out of its allowed range, raised by a section's `__post_init__`: `field` is
    relative to the section; `convert` adds the section's key and the file, so the error
    reads `params.yaml: train.epochs = 0, must be >= 1`."""

    def __init__(self, field: str, value: Any, rule: str):
        self.field, self.value, self.rule = field, value, rule
        super().__init__(f"{field} = {shown(value)}, {rule}")


# ---------------------------------------------------------------- range checks
# Used by the sections' __post_init__ (before a section is tagged, so these reads are not
# recorded as a stage's reads). Each raises FieldError naming the field, its value and
# what is allowed.
def _at_least(section: Any, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value < minimum:
            raise FieldError(name, value, f"must be >= {minimum}")


def _positive(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if not value > 0:
            raise FieldError(name, value, "must be > 0")


def _probability(section: Any, *names: str, below_one: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if not (0 <= value < 1 if below_one else 0 <= value <= 1):
            raise FieldError(name, value, "must be in [0, 1)" if below_one else
                             "must be in [0, 1]")


def _seed(section: Any, name: str, span: int = 1) -> None:
    """A seed that numpy, torch and scikit-learn all take: `span` seeds from it (an
    ensemble's members) within 0 .. SEED_LIMIT - 1."""
    value = getattr(section, name)
    if not 0 <= value <= SEED_LIMIT - span:
        raise FieldError(name, value, f"must be in 0..{SEED_LIMIT - span} (a seed numpy and "
                         "torch take" + (f", with {span} consecutive seeds" if span > 1 else "")
                         + ")")


def _sizes(section: Any, name: str, odd: bool = False) -> None:
    """A non-empty list of positive ints (odd ones: kernel sizes)."""
    values = getattr(section, name)
    if not values or any(v < 1 for v in values):
        raise FieldError(name, values, "must be a non-empty list of positive integers")
    if odd and any(v % 2 == 0 for v in values):
        raise FieldError(name, values, "kernel sizes must be odd (the padding keeps the "
                         "size only for odd kernels)")


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

    def __post_init__(self):
        if not re.fullmatch(r"[0-9a-fA-F]{32}", self.md5):
            raise FieldError("md5", self.md5, "must be 32 hexadecimal digits")
        _at_least(self, 1, "retries")
        _positive(self, "timeout_s")


@dataclass(frozen=True)
class SyntheticParams(Section):
    actors: int | list[int]      # a count n (actors 1..n) or the actor numbers to make
    seed: int

    def __post_init__(self):
        if isinstance(self.actors, int):
            if not 1 <= self.actors <= len(ACTORS):
                raise FieldError("actors", self.actors, f"must be in 1-{len(ACTORS)}")
        elif (not self.actors or len(set(self.actors)) != len(self.actors)
              or not all(1 <= a <= len(ACTORS) for a in self.actors)):
            raise FieldError("actors", self.actors,
                             f"must be a count 1-{len(ACTORS)} or a list of distinct actors "
                             f"1-{len(ACTORS)}")
        _seed(self, "seed")


@dataclass(frozen=True)
class DataParams(Section):
    source: Literal["synthetic", "zenodo", "local"]
    local_path: str | None
    zenodo: ZenodoParams
    synthetic: SyntheticParams

    def __post_init__(self):
        if self.local_path is not None and not self.local_path.strip():
            raise FieldError("local_path", self.local_path, "must name a folder or archive "
                             "(null when unused); '' would be the project itself")


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

    def __post_init__(self):                 # every FeatureParams, whatever made it
        if self.kind not in ("logmel", "mfcc"):  # a hand-made one skips convert's Literal
            raise FieldError("kind", self.kind, "must be logmel or mfcc")
        _at_least(self, 1, "sample_rate", "n_fft", "hop_length", "n_mels", "batch_size")
        _positive(self, "duration_s", "trim_db", "top_db")
        _at_least(self, 0, "offset_s", "f_min")
        if not 1 <= self.win_length <= self.n_fft:
            raise FieldError("win_length", self.win_length,
                             f"must be in 1..n_fft (n_fft = {self.n_fft})")
        nyquist = self.sample_rate / 2
        if not self.f_min < self.f_max <= nyquist:
            raise FieldError("f_max", self.f_max, f"must be above f_min ({self.f_min}) and "
                             f"at most sample_rate / 2 ({nyquist:g})")
        bins = self.n_fft // 2 + 1
        if self.n_mels > bins:
            raise FieldError("n_mels", self.n_mels, f"must be at most n_fft / 2 + 1 ({bins}, "
                             f"the STFT's frequency bins at n_fft = {self.n_fft}); more mel "
                             "bands than bins leaves bands empty")
        clip = n_samples(self)
        if clip <= self.n_fft:
            raise FieldError("duration_s", self.duration_s, f"gives {clip} samples; a clip must "
                             f"be longer than n_fft ({self.n_fft})")
        if self.kind == "mfcc" and not 1 <= self.n_mfcc <= self.n_mels:
            raise FieldError("n_mfcc", self.n_mfcc,
                             f"must be in 1..n_mels (n_mels = {self.n_mels}) with kind: mfcc")


def n_samples(params: FeatureParams) -> int:
    """Length of every clip, in samples at `params.sample_rate`."""
    return round(params.duration_s * params.sample_rate)


def n_frames(params: FeatureParams) -> int:
    """Frames T of every feature matrix (centred STFT frames)."""
    return 1 + n_samples(params) // params.hop_length


def n_bins(params: FeatureParams) -> int:
    """Feature bins F: n_mels for log-mel, n_mfcc for MFCC."""
    return params.n_mels if params.kind == "logmel" else params.n_mfcc


# ---------------------------------------------------------------- speaker-independent folds
# protocol -> (folds 1..n, test actors a fold): the shape of folds.protocol_folds, stated
# here so that loading params imports no pandas (tests/test_params.py holds them equal)
PROTOCOLS = {"emobox": (6, 4), "loso": (24, 1)}


@dataclass(frozen=True)
class SplitParams(Section):
    protocol: Literal["emobox", "loso"]
    folds: list[int]
    validation_actors: int
    seed: int

    def __post_init__(self):
        count, test_actors = PROTOCOLS[self.protocol]
        bad = [f for f in self.folds if not 1 <= f <= count]
        if not self.folds or bad or len(set(self.folds)) < len(self.folds):
            raise FieldError("folds", self.folds, f"must be distinct folds of protocol "
                             f"{self.protocol} (1-{count}), at least one")
        most = len(ACTORS) - test_actors - 1
        if not 2 <= self.validation_actors <= most:
            raise FieldError("validation_actors", self.validation_actors,
                             f"must be in 2-{most} (one male and one female at least, and "
                             "training actors left)")
        _seed(self, "seed")


# ---------------------------------------------------------------- descriptive analysis
@dataclass(frozen=True)
class DescribeParams(Section):
    example_actor: int           # whose utterances the example figure shows
    example_intensity: Literal["normal", "strong"]  # neutral falls back to normal
    pitch_min_hz: float          # YIN search range
    pitch_max_hz: float
    yin_threshold: float         # YIN dip threshold: lower = stricter voicing
    dpi: int                     # figure resolution (sizes in describe.FIGURES)

    def __post_init__(self):
        if self.example_actor not in ACTORS:
            raise FieldError("example_actor", self.example_actor, f"must be in 1-{len(ACTORS)}")
        _positive(self, "pitch_min_hz", "yin_threshold")
        if not self.pitch_max_hz > self.pitch_min_hz:
            raise FieldError("pitch_max_hz", self.pitch_max_hz,
                             f"must be above pitch_min_hz ({self.pitch_min_hz})")
        _probability(self, "yin_threshold")
        _at_least(self, 1, "dpi")


# ---------------------------------------------------------------- the dvc.yaml matrices
@dataclass(frozen=True)
class CellsParams(Section):
    """Which cells the train/evaluate and represent/probe matrices of dvc.yaml run. A section
    of its own, so that a stage can depend on `train` or `represent` as a whole while
    changing the matrix adds or drops cells without re-running the others."""

    models: list[str]            # classifiers (train@ / evaluate@): sections of params.yaml
    subsets: list[str]           # intensity subsets of the classifiers
    heads: list[str]             # heads over the pretrained encoder (train_head@ / evaluate_head@)
    variants: list[Literal["logmel_stats", "beta_vae", "fhvae", "ss_fhvae"]]  # represent@ / probe@
    variant_subsets: list[str]   # intensity subsets of the representations
    fused_heads: list[str]       # fuse@<head>+<model>-<subset>: each of these heads (of
    fused_models: list[str]      # `heads`) with each of these log-mel models (of `models`)

    def __post_init__(self):
        for key, values, known in (("models", self.models, FEATURE_MODELS),
                                   ("heads", self.heads, HEAD_MODELS),
                                   ("subsets", self.subsets, SUBSETS),
                                   ("variant_subsets", self.variant_subsets, SUBSETS)):
            unknown = [v for v in values if v not in known]
            if unknown:
                raise FieldError(key, values, f"unknown {unknown}; known: {list(known)}")
        for key, values, cells in (("fused_heads", self.fused_heads, "heads"),
                                   ("fused_models", self.fused_models, "models")):
            absent = [v for v in values if v not in getattr(self, cells)]
            if absent:
                raise FieldError(key, values, f"{absent} not among cells.{cells} "
                                 f"{getattr(self, cells)}: a fusion needs both members' cells "
                                 f"(fused_heads and fused_models [] for no fusion)")
        if bool(self.fused_heads) != bool(self.fused_models):
            raise FieldError("fused_heads", self.fused_heads, "a fusion needs a head and a "
                             f"log-mel model (fused_models: {self.fused_models}); [] for "
                             "both: none")

    def fusions(self) -> list[tuple[str, str]]:
        """The (head, model) pairs of the fuse@ matrix."""
        return [(h, m) for h in self.fused_heads for m in self.fused_models]


# ---------------------------------------------------------------- the classifiers' sections
def _layer_list(section: Any) -> None:
    layers = section.layers
    if isinstance(layers, str) and layers != "all":
        raise FieldError("layers", layers, "must be all or a list of layer indices")
    if isinstance(layers, list) and (not layers or len(set(layers)) != len(layers)):
        raise FieldError("layers", layers, "must be all or distinct layer indices")


def _statistics(section: Any) -> None:
    if not section.statistics or len(set(section.statistics)) != len(section.statistics):
        raise FieldError("statistics", section.statistics, "must be mean, std or both, once each")


@dataclass(frozen=True)
class CNNConfig(Section):
    """`cnn`: the base CNN (models/cnn.py)."""

    channels: list[int]      # output channels of each conv block, e.g. [16, 32, 64]
    kernel_size: int         # square conv kernel, odd
    pool: int                # max-pool size (both axes) after each block
    dropout: float           # after each block
    classifier_dropout: float
    deltas: int              # 0, 1 (delta) or 2 (delta + delta-delta) extra input channels

    def __post_init__(self):
        _sizes(self, "channels")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise FieldError("kernel_size", self.kernel_size, "must be a positive odd integer")
        _at_least(self, 1, "pool")
        _probability(self, "dropout", "classifier_dropout")
        _deltas(self)


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

    def __post_init__(self):
        _sizes(self, "channels")
        _sizes(self, "kernel_sizes", odd=True)
        _at_least(self, 1, "pool", "time_pool", "d_model", "n_heads", "dim_feedforward")
        _at_least(self, 0, "n_layers", "transformer_lr_scale")
        if self.d_model % self.n_heads:
            raise FieldError("d_model", self.d_model,
                             f"must be a multiple of n_heads ({self.n_heads})")
        _probability(self, "conv_dropout", "transformer_dropout", "classifier_dropout")
        _probability(self, "branch_dropout", below_one=True)
        _deltas(self)


def _deltas(config: Any) -> None:
    if config.deltas not in (0, 1, 2):
        raise FieldError("deltas", config.deltas, "must be 0, 1 or 2")


# model name -> its config; the name is also its params.yaml section and its module in
# speech_emotion.models (which maps the same names to the nn.Module classes)
@dataclass(frozen=True)
class WhisperMLPConfig(Section):
    """`whisper_mlp`: a learnt weighting of the encoder's layers, then an MLP, over each
    layer's statistics pooled over the utterance (models/whisper_mlp.py; EmoBox's head)."""

    layers: str | list[int]   # all: a softmax-weighted sum of every hidden state (the input
                              # to block 1 and each block's output); or the indices to weigh
                              # ([-1]: the last layer alone)
    statistics: list[Literal["mean", "std"]]  # of each layer's frames: [mean] is EmoBox's
    layer_weighting: Literal["learnt", "mean"]  # learnt softmax weights, or a plain average
    layer_dropout: float      # training: P(a layer is left out of the mix), never all
    hidden: int               # MLP width; 0: a linear head
    dropout: float            # on the weighted statistics and the hidden layer

    def __post_init__(self):
        _layer_list(self)
        _statistics(self)
        _at_least(self, 0, "hidden")
        _probability(self, "dropout")
        _probability(self, "layer_dropout")


@dataclass(frozen=True)
class WhisperASPConfig(Section):
    """`whisper_asp`: a learnt weighting of the encoder's layers, then attentive statistics
    pooling over the utterance's frames (encoded.h5's grid), then an MLP
    (models/whisper_asp.py)."""

    layers: str | list[int]   # all, or the indices of the hidden states to weigh
    attention: int            # hidden units of the frames' attention scorer
    statistics: list[Literal["mean", "std"]]  # attention-weighted, of the mixed frames
    pooled_norm: bool         # batch norm of the pooled statistics, before the MLP
    hidden: int               # MLP width; 0: a linear head
    dropout: float            # on the pooled statistics and the hidden layer

    def __post_init__(self):
        _layer_list(self)
        _statistics(self)
        _at_least(self, 1, "attention")
        _at_least(self, 0, "hidden")
        _probability(self, "dropout")


# Classifiers of the log-mel features (features.h5) and heads of the encoder's output
# (encoded.h5); each name is also its params.yaml section.
FEATURE_MODELS: dict[str, type] = {"cnn": CNNConfig, "cnn_transformer": CNNTransformerConfig}
HEAD_MODELS: dict[str, type] = {"whisper_mlp": WhisperMLPConfig, "whisper_asp": WhisperASPConfig}
# Heads that read the frames' grid (encode.grid) rather than each layer's pooled statistics
GRID_HEADS = ("whisper_asp",)
MODEL_CONFIGS: dict[str, type] = {**FEATURE_MODELS, **HEAD_MODELS}


# ---------------------------------------------------------------- training (classifiers)
@dataclass(frozen=True)
class SpecAugmentParams(Section):
    enabled: bool
    freq_mask: int               # widest frequency mask, in bins (torchaudio FrequencyMasking)
    time_mask: int               # widest time mask, in frames (torchaudio TimeMasking)
    masks: int                   # masks of each kind per utterance

    def __post_init__(self):
        _at_least(self, 0, "freq_mask", "time_mask", "masks")


@dataclass(frozen=True)
class NoiseParams(Section):
    enabled: bool
    p: float                     # chance that an utterance gets noise
    snr_db_min: float            # SNR drawn uniformly from [snr_db_min, snr_db_max]
    snr_db_max: float

    def __post_init__(self):
        _probability(self, "p")
        if self.snr_db_max < self.snr_db_min:
            raise FieldError("snr_db_max", self.snr_db_max,
                             f"must be >= snr_db_min ({self.snr_db_min})")


@dataclass(frozen=True)
class TimeShiftParams(Section):
    enabled: bool
    max_frames: int              # circular shift by up to this many frames either way

    def __post_init__(self):
        _at_least(self, 0, "max_frames")


@dataclass(frozen=True)
class WarpParams(Section):
    enabled: bool
    freq: float                  # mel axis stretched by a factor in [1 - freq, 1 + freq]
    time: float                  # time axis stretched by a factor in [1 - time, 1 + time]

    def __post_init__(self):
        for key in ("freq", "time"):
            if not 0 <= getattr(self, key) < 1:
                raise FieldError(key, getattr(self, key), "must be in [0, 1) (a stretch "
                                 "factor 1 +/- it must stay positive)")


@dataclass(frozen=True)
class AugmentParams(Section):
    spec_augment: SpecAugmentParams
    noise: NoiseParams
    time_shift: TimeShiftParams
    warp: WarpParams
    mixup_alpha: float           # Beta(alpha, alpha) mixup of batches; 0 = off

    def __post_init__(self):
        _at_least(self, 0, "mixup_alpha")


@dataclass(frozen=True)
class SpeakerNormParams(Section):
    models: list[str]            # the models trained to standardise each speaker's inputs by
                                 # that speaker's own statistics (log-mel models, heads or
                                 # both; normalisation.speaker_statistics); []: none
    prior: float                 # weight, in utterances, of the training statistics in a
                                 # speaker's (shrinkage); 0: the speaker's own alone

    def __post_init__(self):
        unknown = [m for m in self.models if m not in MODEL_CONFIGS]
        if unknown or len(set(self.models)) != len(self.models):
            raise FieldError("models", self.models, "must be distinct model names, of "
                             + ", ".join(MODEL_CONFIGS))
        _at_least(self, 0, "prior")


@dataclass(frozen=True)
class OptimParams(Section):
    name: Literal["adamw", "sgd"]
    lr: float                    # peak learning rate
    weight_decay: float
    momentum: float              # sgd only
    schedule: Literal["constant", "cosine"]  # after a linear warm-up
    warmup_epochs: int
    grad_clip: float             # max gradient norm; 0 = off

    def __post_init__(self):
        _positive(self, "lr")
        _at_least(self, 0, "weight_decay", "momentum", "warmup_epochs", "grad_clip")


@dataclass(frozen=True)
class TrainParams(Section):
    seed: int                    # weights, shuffling and augmentation
    ensemble: int                # models per fold, seeds seed .. seed + ensemble - 1;
                                 # their class probabilities are averaged
    device: Literal["auto", "cpu", "cuda", "mps"]  # auto: CUDA, then MPS, then CPU
    threads: int                 # torch CPU threads per process; 0 = torch's default
    workers: int                 # processes training a cell's folds and members side by
                                 # side, one thread each; 0: one per core
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
    speaker_norm: SpeakerNormParams  # each speaker's own statistics, then the training ones
    optim: OptimParams
    augment: AugmentParams

    def __post_init__(self):
        _at_least(self, 1, "ensemble", "epochs", "batch_size", "patience")
        _at_least(self, 0, "threads", "workers")
        _probability(self, "label_smoothing")
        _seed(self, "seed", span=self.ensemble)  # member m trains from seed + m


# ---------------------------------------------------------------- representation learning
@dataclass(frozen=True)
class LogmelStatsParams(Section):
    statistics: list[Literal["mean", "std"]]  # per-bin statistics over frames (the baseline)

    def __post_init__(self):
        if not self.statistics:
            raise FieldError("statistics", self.statistics, "must name at least one statistic")


@dataclass(frozen=True)
class BetaVAEParams(Section):
    epochs: int
    lr: float                    # Adam
    channels: list[int]          # conv channels; each conv halves mel bins and frames
    latent_dim: int
    beta: float                  # weight of the KL term

    def __post_init__(self):
        _at_least(self, 1, "epochs", "latent_dim")
        _positive(self, "lr")
        _sizes(self, "channels")
        _at_least(self, 0, "beta")


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

    def __post_init__(self):
        _at_least(self, 1, "epochs", "hidden", "z1_dim", "z2_dim")
        _positive(self, "lr", "z2_prior_std", "mu2_prior_std")
        _at_least(self, 0, "alpha", "supervised_weight")


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

    def __post_init__(self):
        _at_least(self, 1, "segment_frames", "batch_size")
        _at_least(self, 0, "threads")
        _seed(self, "seed")
        if self.fhvae.supervised_weight != 0:
            raise FieldError("fhvae.supervised_weight", self.fhvae.supervised_weight,
                             "must be 0 (fhvae is the unsupervised model; ss_fhvae has the head)")
        if not self.ss_fhvae.supervised_weight > 0:
            raise FieldError("ss_fhvae.supervised_weight", self.ss_fhvae.supervised_weight,
                             "must be > 0 (the emotion head is what makes it ss_fhvae)")


@dataclass(frozen=True)
class ProbeParams(Section):
    C: float                     # inverse L2 strength of the logistic regression
    max_iter: int
    class_weight: Literal["none", "balanced"]
    speaker_fit_repetition: Literal[1, 2]  # speaker probe: fit on this repetition
    tsne_perplexity: float       # the t-SNE picture
    seed: int                    # t-SNE

    def __post_init__(self):
        _positive(self, "C", "tsne_perplexity")
        _at_least(self, 1, "max_iter")
        _seed(self, "seed")                  # scikit-learn's random_state: 0 .. 2**32 - 1


@dataclass(frozen=True)
class EvaluateParams(Section):
    shifts: list[int]            # test-time augmentation: frames each scored copy is shifted

    def __post_init__(self):
        if not self.shifts:
            raise FieldError("shifts", self.shifts, "give at least one shift ([0]: no "
                             "test-time augmentation)")


@dataclass(frozen=True)
class FusionParams(Section):
    head_weight: float           # fuse@: p = head_weight * p_head + (1 - head_weight) * p_model

    def __post_init__(self):
        _probability(self, "head_weight")


# ---------------------------------------------------------------- external corpora
@dataclass(frozen=True)
class CorpusParams(Section):
    name: str                    # metrics/external/<name>/: letters, digits, _ and -
    path: str                    # a folder, a .zip or a tar; preset csv: the CSV file
    preset: Literal["tess", "savee", "crema_d", "csv"]  # how names give the emotion: the
                                 # presets of speech_emotion.external (tests hold them equal)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.name) \
                or len(self.name) > NAME_LIMIT:
            raise FieldError("name", self.name, f"must be letters, digits, _ and - (a folder "
                             f"name), starting with a letter or digit, at most {NAME_LIMIT} "
                             "characters")
        if not self.path.strip():
            raise FieldError("path", self.path, "must name the corpus's folder, archive or "
                             "CSV file")


@dataclass(frozen=True)
class ExternalParams(Section):
    corpora: list[CorpusParams]  # scored by the stage external; [] (no corpus): nothing
    prior_correction: bool       # also report the figures after EM re-estimation of each
                                 # corpus's class priors (looks at the whole corpus)

    def __post_init__(self):
        names = [corpus.name for corpus in self.corpora]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise FieldError("corpora", names, f"names must be distinct; twice: {twice}")


@dataclass(frozen=True)
class EncodeParams(Section):
    """`encode`: the pretrained encoder's output for every utterance (stage encode)."""

    model: str                   # Whisper weights: a name with a recorded sha256 (base), or a
                                 # CTranslate2 model folder (model.bin, config.json, vocabulary)
    pad_30s: bool                # zero-pad each utterance to Whisper's 30 s window (as trained)
    frames: Literal["none", "last"]  # frame-level output stored besides the pooled statistics
    grid: int                    # the frame heads' input: each layer's frames averaged over
                                 # this many equal stretches of the utterance; 0: none
    workers: int                 # processes, one thread each; 0: one per core
    download: bool               # true: faster-whisper may fetch the weights when no copy is
                                 # found locally or in a package
    copies: int                  # training copies of each utterance, each changed as one
                                 # session of its actor (waveforms.training_copy); heads train
                                 # on them beside the originals; 0: none
    copy_kinds: list[Literal["room", "voice", "noise", "codec"]]  # copy k: kinds[k % len]
    copy_seed: int               # the copies' rooms, voices, noise and codecs

    def __post_init__(self):
        if not self.model.strip():
            raise FieldError("model", self.model, "must name weights (base) or a folder")
        _at_least(self, 0, "workers", "copies", "copy_seed", "grid")
        if self.copies and not self.copy_kinds:
            raise FieldError("copy_kinds", self.copy_kinds, "must name a kind when copies > 0")


SECTIONS: dict[str, type] = {
    "cells": CellsParams,
    "data": DataParams,
    "features": FeatureParams,
    "encode": EncodeParams,
    "split": SplitParams,
    "describe": DescribeParams,
    "represent": RepresentParams,
    "probe": ProbeParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "fusion": FusionParams,
    "external": ExternalParams,
    **MODEL_CONFIGS,
}


# ---------------------------------------------------------------- loading
def load(path: str | Path = DEFAULT_PATH, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate params.yaml. `overrides` maps dotted keys to values (for tests)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: a directory, not a params file") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at "
                          f"offset {err.start}); save the file as UTF-8") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read the params file ({err.strerror or err})") \
            from None
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return from_dict(raw, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    value silently; DVC's parser refuses the file, so `check` must too)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":      # `<<: *base` may repeat
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in first:
                        raise _DuplicateKey(key, first[key] + 1, key_node.start_mark.line + 1)
                    first[key] = key_node.start_mark.line
                except TypeError:               # an unhashable key: the base class says so
                    continue
        return super().construct_mapping(node, deep)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except ValueError as err:        # int() of over 4300 digits, a bad date, ...
            raise yaml.constructor.ConstructorError(
                None, None, f"unreadable value ({' '.join(str(err).split())})",
                node.start_mark) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        self.key, self.first, self.again = key, first, again
        super().__init__(f"duplicate key {shown(key)}")


def parse_yaml(text: str, source: str) -> Any:
    """The data of one YAML document, as `yaml.safe_load` gives it, but refusing duplicate
    keys; every error is one line naming `source` and the line."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    except _DuplicateKey as err:
        raise ParamsError(f"{source}: line {err.again}: duplicate key {shown(err.key)} (also "
                          f"on line {err.first}); give each key once (DVC refuses such a "
                          "file)") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = " ".join(filter(None, (err.context, err.problem))) or type(err).__name__
        raise ParamsError(f"{source}: not valid YAML: {what}{where}") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def from_dict(raw: Mapping[str, Any], source: str = "params") -> Params:
    unknown = sorted(set(raw) - set(SECTIONS), key=str)
    if unknown:
        raise ParamsError(f"{source}: unknown section(s) {_cut(', '.join(map(str, unknown)))}; "
                          f"known: {', '.join(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        if name not in raw:
            raise ParamsError(f"{source}: missing section '{name}'")
        sections[name] = convert(raw[name], cls, name, source)
    try:
        _check_across(sections)                 # before tagging: these reads are no stage's
    except FieldError as err:
        raise ParamsError(f"{source}: {err}") from None
    for name, section in sections.items():
        _tag(section, name)
    return Params(sections)


def _check_across(s: dict[str, Any]) -> None:
    """Rules between sections, each stated where the code that needs it runs too; raises
    FieldError with the full dotted key. A rule about a cell only applies when the cell runs."""
    feats = s["features"]
    frames, bins = n_frames(feats), n_bins(feats)
    shifts = s["evaluate"].shifts
    if any(abs(shift) >= frames for shift in shifts):   # training.check_shifts
        raise FieldError("evaluate.shifts", shifts, f"every shift must be shorter than the "
                         f"clip's {frames} frames (features.duration_s / hop_length)")
    segment = s["represent"].segment_frames
    if set(s["cells"].variants) - {"logmel_stats"} and segment > frames:  # representation.segment
        raise FieldError("represent.segment_frames", segment, f"must be at most the clip's "
                         f"{frames} frames (features.duration_s / hop_length)")
    if "beta_vae" in s["cells"].variants:                # models/vae.py: each conv halves both
        factor = 2 ** len(s["represent"].beta_vae.channels)
        if bins % factor or segment % factor:
            raise FieldError("represent.beta_vae.channels", s["represent"].beta_vae.channels,
                             f"{len(s['represent'].beta_vae.channels)} halvings need the "
                             f"feature bins ({bins}) and represent.segment_frames ({segment}) "
                             f"to be multiples of {factor}")
    grid_heads = [h for h in s["cells"].heads if h in GRID_HEADS]
    if grid_heads and not s["encode"].grid:               # inputs.read: encoded.h5's /grid
        raise FieldError("encode.grid", 0, f"the heads {grid_heads} read the frames' grid: "
                         "set encode.grid (e.g. 32), or drop them from cells.heads")
    noise = s["train"].augment.noise
    if noise.enabled and feats.kind != "logmel":         # training.check_augment
        raise FieldError("train.augment.noise.enabled", True,
                         "needs features.kind = logmel (noise is mixed in at a dB level)")


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
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {shown(value)}")
        hints = typing.get_type_hints(hint)
        fields = [f.name for f in dataclasses.fields(hint)]
        unknown = sorted(set(value) - set(fields), key=str)
        if unknown:
            names = ", ".join(f"{key}.{u}" for u in unknown)
            raise ParamsError(f"{source}: unknown key(s) {_cut(names)}")
        missing = [f for f in fields if f not in value]
        if missing:
            names = ", ".join(f"{key}.{m}" for m in missing)
            raise ParamsError(f"{source}: missing key(s) {names}")
        converted = {f: convert(value[f], hints[f], f"{key}.{f}", source) for f in fields}
        try:
            return hint(**converted)
        except FieldError as err:          # a range check of the section: add where it is
            raise ParamsError(f"{source}: {key}.{err}") from None
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return convert(value, option, key, source)
            except ParamsError as err:
                errors.append(str(err))
        raise ParamsError(f"{source}: '{key}' = {shown(value)} is none of {_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{source}: '{key}' = {shown(value)}, expected one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{source}: '{key}' must be a list, got {shown(value)}")
        return [convert(item, args[0], f"{key}[{i}]", source) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {shown(value)}")
        return {k: convert(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"{source}: '{key}' must be null, got {shown(value)}")
        return None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: '{key}' must be a number, got {shown(value)}")
        try:
            number = float(value)               # an int past float's range overflows
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ParamsError(f"{source}: '{key}' must be a finite number, got {shown(value)}")
        return number
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ParamsError(f"{source}: '{key}' must be {hint.__name__}, got {shown(value)}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported type hint {hint!r} for {key}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check(argv: list[str] | None = None) -> int:
    """`speech-emotion check [params.yaml ...]`: validate the file as every stage does (types,
    unknown and missing keys, ranges); one line and exit 1 on the first problem. Run it
    before `dvc repro`/`dvc exp run`: DVC itself meets a misspelled key first and removes
    the outputs of the stages that declare it (docs/RELIABILITY.md)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="speech-emotion check",
        description="Validate params.yaml as every stage does (types, unknown, missing and "
                    "duplicate keys, ranges): one line and exit status 1 on the first problem. "
                    "Run it before dvc repro / dvc exp run.")
    parser.add_argument("paths", nargs="*", metavar="params.yaml",
                        help=f"the files to check (default: {DEFAULT_PATH})")
    try:
        args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    except SystemExit as exit:                  # --help (0) or a bad option (2)
        return int(exit.code or 0)
    for path in args.paths or [str(DEFAULT_PATH)]:
        try:
            load(path)
        except ParamsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(check())
