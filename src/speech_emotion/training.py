"""Training the classifiers: the loop, augmentation, early stopping, dvclive, DDP.

One fold at a time (`train_fold`), one dvc.yaml cell at a time (`train_cell`):

    features (N, F, T) dB log-mel, rows of data.csv
    -> rows of the subset, then the fold's training / validation rows (speaker-independent,
       twins on one side; the test actors are never loaded here)
    -> per-bin mean and std over the training rows only          (normalisation)
    -> each epoch, training rows only: noise at a random SNR and a time shift (raw dB),
       normalise, SpecAugment masks, optional mixup                (augmentation)
    -> validation rows: loss, UA, WA each epoch; the best epoch's weights are kept and
       training stops after `patience` epochs without improvement  (model selection)
       or, with `train.monitor: none`, no selection: the validation actors train too,
       all `epochs` run and the last epoch's weights are kept (the baselines' refit)
    -> a checkpoint dict (speech_emotion.checkpoint)

Deterministic on CPU: the weights, the shuffling and the augmentation draw from seeds in
params, so the same params give the same weights. Under `torchrun --nproc_per_node N`
the loop runs with DistributedDataParallel (gloo on CPU, NCCL on CUDA): every process
takes its share of each global batch; validation, early stopping and saving happen on
identical weights on every process and only rank 0 writes.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torchaudio
from torch import nn
from tqdm import tqdm

from . import metrics, models
from .folds import Fold, make_folds, split_rows
from .params import AugmentParams, Params, TrainParams
from .ravdess import SUBSET_INTENSITY, SUBSETS

STD_FLOOR = 1e-5  # a constant feature bin (e.g. all padding) is left unscaled, not divided by 0


# ---------------------------------------------------------------- where to run
def select_device(choice: str) -> torch.device:
    """`auto`: CUDA, then Apple MPS, then CPU. Under torchrun, CUDA is this rank's GPU."""
    if choice == "auto":
        if torch.cuda.is_available():
            choice = "cuda"
        elif torch.backends.mps.is_available():
            choice = "mps"
        else:
            choice = "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device = cuda, but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if choice == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("train.device = mps, but Apple MPS is not available")
    return torch.device(choice)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return Distributed(0, 1)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


# ---------------------------------------------------------------- normalisation
def centre_utterances(features: torch.Tensor, how: str) -> torch.Tensor:
    """(B, F, T) -> (B, F, T) with each utterance's own mean taken away (no other utterance's
    statistics: what a deployed model knows). `none`: unchanged; `level`: the mean over
    bins and frames (the recording level); `bins`: each bin's mean over frames (the
    spectral envelope of speaker, microphone and room, as cepstral mean normalisation)."""
    if how == "none":
        return features
    if how == "level":
        return features - features.mean(dim=(1, 2), keepdim=True)
    if how == "bins":
        return features - features.mean(dim=2, keepdim=True)
    raise ValueError(f"train.utterance_norm: unknown {how!r} (none | level | bins)")


def fit_normalisation(features: np.ndarray | torch.Tensor,
                      utterance: str = "none") -> dict[str, Any]:
    """Per-bin mean and std (F,) over every frame of `features` (N, F, T), after
    `centre_utterances(features, utterance)`, which `normalise` then applies first."""
    x = centre_utterances(torch.as_tensor(features, dtype=torch.float64), utterance)
    mean = x.mean(dim=(0, 2))
    std = x.std(dim=(0, 2)).clamp(min=STD_FLOOR)
    stats: dict[str, Any] = {"mean": mean.float(), "std": std.float()}
    if utterance != "none":
        stats["utterance"] = utterance
    return stats


def normalise(features: torch.Tensor, normalisation: dict[str, Any]) -> torch.Tensor:
    """(B, F, T) -> (B, F, T): the utterance's own centring (if the statistics were fitted
    with one), then zero mean and unit variance per bin (training statistics)."""
    features = centre_utterances(features, normalisation.get("utterance", "none"))
    mean = normalisation["mean"].to(features.device)[:, None]
    std = normalisation["std"].to(features.device)[:, None]
    return (features - mean) / std


# ---------------------------------------------------------------- augmentation
def add_noise(db: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Mix noise into dB log-mel features (B, F, T) at a per-utterance SNR (B,).

    An approximation in the mel power domain (the features hold no phase to mix waves):
    the noise is flat across mel bins, with chi-square fluctuations per cell (the mean of
    two exponentials), scaled so that its mean power is the utterance's mean power over
    10^(SNR/10). Draws from torch's global RNG.
    """
    power = torch.pow(10.0, db / 10.0)                                   # (B, F, T)
    level = power.mean(dim=(1, 2)) / torch.pow(10.0, snr_db / 10.0)      # (B,)
    u = torch.rand((2,) + db.shape, device=db.device).clamp(min=1e-12)
    fluctuation = -torch.log(u).mean(dim=0)                              # (B, F, T), mean 1
    return 10.0 * torch.log10(power + level[:, None, None] * fluctuation)


def time_shift(x: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Roll each utterance (B, F, T) along time by its own offset in [-max_frames, max_frames]."""
    b, f, t = x.shape
    shift = torch.randint(-max_frames, max_frames + 1, (b,), device=x.device)     # (B,)
    source = (torch.arange(t, device=x.device)[None, :] - shift[:, None]) % t      # (B, T)
    return x.gather(2, source[:, None, :].expand(b, f, t))


def stretch(x: torch.Tensor, factor: torch.Tensor, dim: int, centre: bool) -> torch.Tensor:
    """Stretch each utterance of x (B, F, T) along `dim` (1: mel bins, 2: frames) by its own
    factor (B,), with linear interpolation: output index i reads input position i / factor,
    measured from index 0 (centre=False) or from the middle (centre=True); positions past
    either end read the edge value. On the mel axis factor > 1 moves the content up (the
    formants of a shorter vocal tract), factor < 1 down; on time factor > 1 is slower speech."""
    n = x.shape[dim]
    origin = (n - 1) / 2 if centre else 0.0
    grid = torch.arange(n, dtype=x.dtype, device=x.device)
    position = ((grid[None, :] - origin) / factor[:, None] + origin).clamp(0, n - 1)  # (B, n)
    low = position.floor().long().clamp(max=n - 2) if n > 1 else position.long()
    weight = (position - low).to(x.dtype)                                           # (B, n)
    high = (low + 1).clamp(max=n - 1)
    shape = (-1, n, 1) if dim == 1 else (-1, 1, n)
    expand = list(x.shape)
    low_index = low.reshape(shape).expand(expand)
    high_index = high.reshape(shape).expand(expand)
    w = weight.reshape(shape)
    return x.gather(dim, low_index) * (1 - w) + x.gather(dim, high_index) * w


class Augment(nn.Module):
    """The training-time augmentation of one batch, each part switchable in params.

    forward(raw dB features (B, F, T)) -> normalised, augmented features (B, F, T).
    Noise and time shift act on the raw dB values; the SpecAugment masks act after
    normalisation and fill with 0, the training mean.
    """

    def __init__(self, params: AugmentParams, normalisation: dict[str, torch.Tensor]):
        super().__init__()
        self.params = params
        self.normalisation = normalisation
        spec = params.spec_augment
        self.freq_mask = torchaudio.transforms.FrequencyMasking(spec.freq_mask, iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(spec.time_mask, iid_masks=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise, shift, spec = self.params.noise, self.params.time_shift, self.params.spec_augment
        warp = self.params.warp
        if warp.enabled:
            b = x.shape[0]
            if warp.freq > 0:
                x = stretch(x, torch.empty(b, device=x.device).uniform_(1 - warp.freq,
                                                                        1 + warp.freq), 1, False)
            if warp.time > 0:
                x = stretch(x, torch.empty(b, device=x.device).uniform_(1 - warp.time,
                                                                        1 + warp.time), 2, True)
        if noise.enabled and noise.p > 0:
            snr = torch.empty(x.shape[0], device=x.device).uniform_(noise.snr_db_min,
                                                                    noise.snr_db_max)
            noisy = add_noise(x, snr)
            chosen = torch.rand(x.shape[0], device=x.device) < noise.p
            x = torch.where(chosen[:, None, None], noisy, x)
        if shift.enabled and shift.max_frames > 0:
            x = time_shift(x, shift.max_frames)
        x = normalise(x, self.normalisation)
        if spec.enabled:
            x = x[:, None]                                   # (B, 1, F, T): a mask per utterance
            for _ in range(spec.masks):
                x = self.time_mask(self.freq_mask(x, 0.0), 0.0)
            x = x[:, 0]
        return x


def check_augment(params: AugmentParams, feature_params: dict[str, Any]) -> None:
    """Noise mixing needs dB log-mel (power) features; say so instead of computing nonsense."""
    if params.noise.enabled and feature_params.get("kind") != "logmel":
        raise ValueError(f"train.augment.noise needs features.kind = logmel (the features are "
                         f"{feature_params.get('kind')!r}); set train.augment.noise.enabled=false")
    if params.noise.snr_db_min > params.noise.snr_db_max:
        raise ValueError("train.augment.noise: snr_db_min is above snr_db_max")


# ---------------------------------------------------------------- validation figures
@torch.no_grad()
def logits_of(model: nn.Module, features: torch.Tensor, batch_size: int,
              device: torch.device) -> torch.Tensor:
    """Logits (N, n_classes) of normalised features (N, F, T), in eval mode, on CPU."""
    was_training = model.training
    model.eval()
    out = [model(features[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(features), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def shift_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, F, T) -> (N, F, T) moved `frames` later in time (earlier if negative); the frames
    that come in repeat the first or last frame (the clip's edge, padding as a rule)."""
    t = x.shape[-1]
    source = (torch.arange(t, device=x.device) - frames).clamp(0, t - 1)     # (T,)
    return x[..., source]


def check_shifts(shifts: Sequence[int], n_frames: int, source: str = "evaluate.shifts") -> None:
    """The rule for test-time shifts: at least one, each shorter than the clip of
    `n_frames` frames; ValueError naming `source` (where they came from: `evaluate.shifts`,
    `predict --shifts`) otherwise."""
    if not shifts:
        raise ValueError(f"{source}: give at least one shift ([0]: no test-time augmentation)")
    if any(abs(s) >= n_frames for s in shifts):
        raise ValueError(f"{source} {list(shifts)}: every shift must be shorter than "
                         f"the clip's {n_frames} frames")


def predict_proba(model: nn.Module, checkpoint: dict[str, Any],
                  features: np.ndarray | torch.Tensor, batch_size: int = 64,
                  device: str | torch.device | None = None,
                  shifts: Sequence[int] = (0,)) -> np.ndarray:
    """Class probabilities (N, n_classes) of raw features (N, F, T) from the features stage.

    Applies the checkpoint's normalisation (fitted on its training actors); the class
    order is `checkpoint["labels"]`. `model` comes from `checkpoint.load_model`.
    `shifts` (`evaluate.shifts`): each utterance is scored as copies shifted in time by
    these many frames, and their probabilities are averaged (test-time augmentation: the
    conv stack's pooling grid sees each copy at another phase).
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n_bins = checkpoint["normalisation"]["mean"].shape[0]
    if x.ndim != 3 or x.shape[1] != n_bins:
        raise ValueError(f"features of shape {tuple(x.shape)}: the model expects (N, {n_bins}, T)")
    check_shifts(shifts, x.shape[-1])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    probabilities = [torch.softmax(logits_of(model, normalise(shift_frames(x, s) if s else x,
                                                              checkpoint["normalisation"]),
                                             batch_size, device), dim=1)
                     for s in shifts]
    return torch.stack(probabilities).mean(dim=0).numpy()                      # (N, C)


# ---------------------------------------------------------------- one fold
@dataclass
class FoldData:
    """What one fold trains on: raw features and class indices. No test rows, by design."""

    x_train: np.ndarray   # (N_train, F, T)
    y_train: np.ndarray   # (N_train,) int64, indices into labels
    x_val: np.ndarray
    y_val: np.ndarray


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, mean 1 over the classes present; absent classes weigh 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1)
                       / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def lr_lambda(train: TrainParams, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up, then constant or cosine to zero."""
    warmup = train.optim.warmup_epochs * steps_per_epoch
    total = max(1, train.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if train.optim.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(model: nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    """AdamW or SGD at `train.optim.lr`; a model with `param_groups()` (cnn_transformer)
    gives each group `lr_scale` times that rate (the schedule scales every group alike)."""
    o = train.optim
    groups = ([{"params": g["params"], "lr": o.lr * g["lr_scale"]} for g in model.param_groups()]
              if hasattr(model, "param_groups") else [{"params": list(model.parameters()), "lr": o.lr}])
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum,
                               weight_decay=o.weight_decay, nesterov=o.momentum > 0)
    raise ValueError(f"train.optim.name: unknown optimiser {o.name!r}")


def improved(monitor: str, value: dict[str, float], best: dict[str, float] | None) -> bool:
    """Better validation: higher UA (ties: lower loss), or lower loss."""
    if best is None:
        return True
    if monitor == "ua":
        return (value["ua"], -value["loss"]) > (best["ua"], -best["loss"])
    return value["loss"] < best["loss"]


def validation_figures(model: nn.Module, x_val: torch.Tensor, y_val: np.ndarray,
                       labels: list[str], batch_size: int, device: torch.device) -> dict[str, float]:
    """{loss, ua, wa} of the model on the validation rows; {} when there are none."""
    if len(y_val) == 0:
        return {}
    logits = logits_of(model, x_val, batch_size, device)
    predicted = logits.argmax(dim=1).numpy()
    scores = metrics.figures([labels[i] for i in y_val], [labels[i] for i in predicted])
    return {"loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(y_val))),
            "ua": scores["ua"], "wa": scores["wa"]}


def train_fold(model_name: str, config: Any, train: TrainParams, data: FoldData,
               labels: list[str], *, seed: int, feature_params: dict[str, Any],
               on_epoch: Callable[[dict[str, float]], None] | None = None,
               progress: bool = True, device: torch.device | None = None) -> dict[str, Any]:
    """Train one model on one fold; return the kept epoch's weights and the loop's record
    (the best epoch on the validation actors, or the last under `train.monitor: none`).

    `on_epoch(record)` gets each epoch's {epoch, train_loss, val_loss, val_ua, val_wa, lr,
    seconds} on the main process (e.g. to log it with dvclive); no val_* without
    validation rows (`train.monitor: none` may train without them).
    Returns {"state_dict", "normalisation", "best_epoch", "best", "history", "parameters",
    "seconds_per_epoch"}.
    """
    device = device or select_device(train.device)
    ddp = init_distributed(device)
    check_augment(train.augment, feature_params)
    if train.batch_size % ddp.world:
        raise ValueError(f"train.batch_size {train.batch_size} is not a multiple of the "
                         f"{ddp.world} processes")
    n_classes, n_bins = len(labels), data.x_train.shape[1]
    selecting = train.monitor != "none"
    if len(data.x_train) == 0:
        raise ValueError("a fold needs training rows")
    if selecting and len(data.x_val) == 0:
        raise ValueError(f"train.monitor {train.monitor!r} needs validation rows")

    torch.manual_seed(seed)                       # the same initial weights on every rank
    model = models.build(model_name, config, n_bins, n_classes).to(device)
    if train.channels_last:                       # (B, C, F, T) stored C-last: faster convs
        model = model.to(memory_format=torch.channels_last)
    net = nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model
    torch.manual_seed(seed * 7919 + 1 + ddp.rank)  # augmentation and dropout: per rank
    shuffle = torch.Generator().manual_seed(seed)  # batch order: the same on every rank

    normalisation = fit_normalisation(data.x_train, train.utterance_norm)
    augment = Augment(train.augment, normalisation)
    x_train = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32))
    y_train = torch.from_numpy(data.y_train.astype(np.int64))
    x_val = normalise(torch.from_numpy(np.asarray(data.x_val, dtype=np.float32)), normalisation)
    y_val = data.y_val.astype(np.int64)

    weights = (class_weights(data.y_train, n_classes) if train.class_weighting == "balanced"
               else torch.ones(n_classes)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=train.label_smoothing)
    local_batch = train.batch_size // ddp.world
    # Every rank gets the same number of equal batches (the padded, strided split that
    # torch's DistributedSampler makes); a batch of one cannot train batch norm.
    per_rank = math.ceil(len(x_train) / ddp.world)
    steps_per_epoch = max(1, math.ceil(per_rank / local_batch) - (per_rank % local_batch == 1))
    optimizer = make_optimizer(model, train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(train, steps_per_epoch))
    use_amp = train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    beta = (torch.distributions.Beta(train.augment.mixup_alpha, train.augment.mixup_alpha)
            if train.augment.mixup_alpha > 0 else None)

    history, best, best_state, best_epoch, waited, seconds = [], None, None, 0, 0, []
    epochs = tqdm(range(1, train.epochs + 1), desc=f"{model_name}", unit="epoch",
                  disable=not (progress and ddp.main), file=sys.stderr)
    for epoch in epochs:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        order = torch.cat([order, order[: per_rank * ddp.world - len(order)]])[ddp.rank::ddp.world]
        total_loss = torch.zeros(2, dtype=torch.float64)
        for step in range(steps_per_epoch):
            index = order[step * local_batch:(step + 1) * local_batch]
            xb = augment(x_train[index].to(device))
            yb = y_train[index].to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                if beta is not None:
                    lam = float(beta.sample())
                    mate = torch.randperm(len(xb), device=xb.device)
                    logits = net(lam * xb + (1 - lam) * xb[mate])
                    loss = lam * criterion(logits, yb) + (1 - lam) * criterion(logits, yb[mate])
                else:
                    loss = criterion(net(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if train.optim.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), train.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += torch.tensor([loss.item() * len(index), len(index)], dtype=torch.float64)
        if ddp.world > 1:
            dist.all_reduce(total_loss)
            for buffer in model.buffers():   # batch-norm statistics: rank 0's, everywhere
                dist.broadcast(buffer, 0)
        train_loss = float(total_loss[0] / total_loss[1])

        value = validation_figures(model, x_val, y_val, labels, 2 * train.batch_size, device)
        seconds.append(time.perf_counter() - start)
        record = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in value.items()},
                  "lr": scheduler.get_last_lr()[0], "seconds": seconds[-1]}
        history.append(record)
        if on_epoch is not None and ddp.main:
            on_epoch(record)
        epochs.set_postfix(loss=f"{train_loss:.3f}",
                           **({"val_ua": f"{value['ua']:.3f}"} if value else {}))

        if not selecting:                    # no selection: the last epoch is the model
            if epoch == train.epochs:
                best, best_epoch = value, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            continue
        if improved(train.monitor, value, best):
            best, best_epoch, waited = value, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
        stop = torch.tensor([int(waited >= train.patience)])
        if ddp.world > 1:
            dist.broadcast(stop, 0)          # rank 0 decides, so no process waits alone
        if stop.item():
            break
    epochs.close()
    return {"state_dict": best_state, "normalisation": normalisation, "best_epoch": best_epoch,
            "best": best, "history": history, "parameters": models.count_parameters(model),
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0}


# ---------------------------------------------------------------- one dvc.yaml cell
def subset_rows(table: pd.DataFrame, subset: str) -> np.ndarray:
    """Row positions of the utterances of one intensity subset (`all`: every row)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; known: {list(SUBSETS)}")
    intensity = SUBSET_INTENSITY[subset]
    if intensity is None:
        return np.arange(len(table))
    return np.flatnonzero(table["intensity_name"].to_numpy() == intensity)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain run: the process that writes outputs."""
    return int(os.environ.get("RANK", 0)) == 0


def fold_record(fold: Fold) -> dict[str, Any]:
    return {"number": fold.number, "test_actors": list(fold.test_actors),
            "validation_actors": list(fold.validation_actors),
            "train_actors": list(fold.train_actors)}


def train_cell(model_name: str, subset: str, params: Params, table: pd.DataFrame,
               features: np.ndarray, feature_params: dict[str, Any],
               save: Callable[[int, dict[str, Any]], None],
               on_epoch: Callable[[str, dict[str, float]], None] | None = None,
               progress: bool = True, log=print) -> list[dict[str, Any]]:
    """Train `model_name` on `subset` for every fold in `params.split`: `train.ensemble`
    models per fold, with seeds from `train.seed` up (one checkpoint holds them all).

    `table` is data.csv and `features` its rows (N, F, T). `save(fold_number, checkpoint)`
    stores each fold's checkpoint; `on_epoch(run, record)` sees every epoch, `run` being
    "fold<k>" (or "fold<k>/member<m>" in an ensemble).
    Returns one summary per fold and member (kept epoch, validation figures, seconds per
    epoch).
    """
    if len(table) != len(features):
        raise ValueError(f"data.csv has {len(table)} rows but the features {len(features)}")
    labels = list(SUBSETS[subset])
    rows = subset_rows(table, subset)
    sub = table.iloc[rows].reset_index(drop=True)
    unknown = sorted(set(sub["emotion_name"]) - set(labels))
    if unknown:
        raise ValueError(f"subset {subset}: emotions {unknown} are not among its classes {labels}")
    y = sub["emotion_name"].map({name: i for i, name in enumerate(labels)}).to_numpy(np.int64)
    split, train = params.split, params.train
    config = params.section(model_name)
    single = train.ensemble == 1
    summaries = []
    for fold in make_folds(sub["actor"].unique(), split.protocol, split.folds,
                           split.validation_actors, split.seed, log=log):
        sides = split_rows(sub, fold)
        if train.monitor == "none":           # no selection: the validation actors train too
            fit, held = np.concatenate([sides.train, sides.validation]), sides.validation[:0]
        else:
            fit, held = sides.train, sides.validation
        data = FoldData(features[rows[fit]], y[fit], features[rows[held]], y[held])
        results = []
        for member in range(train.ensemble):   # member m trains as train.seed + m alone would
            run = fold.name if single else f"{fold.name}/member{member + 1}"
            results.append(train_fold(
                model_name, config, train, data, labels,
                seed=(train.seed + member) * 1000 + fold.number, feature_params=feature_params,
                on_epoch=(lambda record, run=run: on_epoch(run, record)) if on_epoch else None,
                progress=progress))
        checkpoint = {
            "state_dict": results[0]["state_dict"] if single else [r["state_dict"] for r in results],
            "model": model_name,
            "config": asdict(config),
            "labels": labels,
            "normalisation": results[0]["normalisation"],   # the same rows, the same statistics
            "feature_params": dict(feature_params),
            "fold": fold_record(fold),
            "subset": subset,
            "best_epoch": results[0]["best_epoch"] if single else [r["best_epoch"] for r in results],
            "monitor": train.monitor,
        }
        save(fold.number, checkpoint)
        for member, result in enumerate(results):
            summaries.append({"fold": fold.number, **({} if single else {"member": member + 1}),
                              "best_epoch": result["best_epoch"],
                              "epochs_run": len(result["history"]),
                              "validation": {k: round(v, 4) for k, v in (result["best"] or {}).items()},
                              "train_rows": int(len(data.y_train)),
                              "validation_rows": int(len(data.y_val)),
                              "parameters": result["parameters"],
                              "seconds_per_epoch": round(result["seconds_per_epoch"], 2)})
    return summaries
