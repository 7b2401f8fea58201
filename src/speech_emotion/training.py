"""Training the classifiers: the loop, early stopping, the checkpoint dict.

One fold at a time (`train_fold`), one dvc.yaml cell at a time (`train_cell`):

    features (N, F, T) dB log-mel, rows of data.csv
    -> rows of the subset, then the fold's training / validation rows (speaker-independent,
       twins on one side; the test actors are never loaded here)
    -> each training actor standardised by its own statistics (`train.speaker_norm`)
    -> per-bin mean and std over the training rows only          (`normalisation`)
    -> each epoch, training rows only: noise at a random SNR and a time shift (raw dB),
       normalise, SpecAugment masks, optional mixup                (`augment`)
    -> validation rows: loss, UA, WA each epoch; the best epoch's weights are kept and
       training stops after `patience` epochs without improvement  (model selection)
       or, with `train.monitor: none`, no selection: the validation actors train too,
       all `epochs` run and the last epoch's weights are kept (the baselines' refit)
    -> a checkpoint dict (speech_emotion.checkpoint)

Deterministic on CPU: the weights, the shuffling and the augmentation draw from seeds in
params, so the same params give the same weights. Under `torchrun --nproc_per_node N`
the loop runs with DistributedDataParallel (`device`: gloo on CPU, NCCL on CUDA): every
process takes its share of each global batch; validation, early stopping and saving
happen on identical weights on every process and only rank 0 writes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from . import metrics, models
from .augment import Augment, check_augment
from .device import init_distributed, select_device
from .folds import fold_record, from_split, split_rows, subset_rows
from .inference import logits_of
from .normalisation import fit_normalisation, normalise, speaker_statistics
from .params import Params, TrainParams
from .pool import default_workers, fork_map
from .ravdess import SUBSETS


# ---------------------------------------------------------------- one fold
@dataclass
class FoldData:
    """What one fold trains on: raw features and class indices. No test rows, by design."""

    x_train: np.ndarray   # (N_train, F, T)
    y_train: np.ndarray   # (N_train,) int64, indices into labels
    x_val: np.ndarray
    y_val: np.ndarray
    speakers_train: np.ndarray | None = None  # (N_train,) who spoke each row: the actor
    speakers_val: np.ndarray | None = None    # needed under train.speaker_norm only


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
              if hasattr(model, "param_groups")
              else [{"params": list(model.parameters()), "lr": o.lr}])
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
                       labels: list[str], batch_size: int,
                       device: torch.device) -> dict[str, float]:
    """{loss, ua, wa} of the model on the validation rows; {} when there are none."""
    if len(y_val) == 0:
        return {}
    logits = logits_of(model, x_val, batch_size, device)
    predicted = logits.argmax(dim=1).numpy()
    scores = metrics.figures([labels[i] for i in y_val], [labels[i] for i in predicted])
    return {"loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(y_val))),
            "ua": scores["ua"], "wa": scores["wa"]}


def head_recipe(train: TrainParams) -> tuple[TrainParams, list[str]]:
    """The recipe a head trains with: its input (the encoder's pooled layers) has no time
    axis and no dB scale, so the log-mel settings (`train.utterance_norm`, the SpecAugment,
    noise, time-shift and warp augmentations) are off for it, whatever `train` says. Returns
    that recipe and the names of the settings that were on and are not applied."""
    a = train.augment
    on = [name for name, enabled in (("train.utterance_norm", train.utterance_norm != "none"),
                                     ("train.augment.spec_augment", a.spec_augment.enabled),
                                     ("train.augment.noise", a.noise.enabled),
                                     ("train.augment.time_shift", a.time_shift.enabled),
                                     ("train.augment.warp", a.warp.enabled)) if enabled]
    off = replace(a, spec_augment=replace(a.spec_augment, enabled=False),
                  noise=replace(a.noise, enabled=False),
                  time_shift=replace(a.time_shift, enabled=False),
                  warp=replace(a.warp, enabled=False))
    return replace(train, utterance_norm="none", augment=off), on


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
    head = models.is_head(model_name)      # over the encoder's output: no dB
    if head:
        train, _ = head_recipe(train)
    else:
        check_augment(train.augment, feature_params)
    if train.batch_size % ddp.world:
        raise ValueError(f"train.batch_size {train.batch_size} is not a multiple of the "
                         f"{ddp.world} processes")
    n_classes, n_bins, n_frames = len(labels), data.x_train.shape[1], data.x_train.shape[2]
    selecting = train.monitor != "none"
    if len(data.x_train) == 0:
        raise ValueError("a fold needs training rows")
    if selecting and len(data.x_val) == 0:
        raise ValueError(f"train.monitor {train.monitor!r} needs validation rows")

    torch.manual_seed(seed)                       # the same initial weights on every rank
    model = models.build(model_name, config, n_bins, n_classes, n_frames,
                         feature_params.get("n_states")).to(device)
    if train.channels_last:                       # (B, C, F, T) stored C-last: faster convs
        model = model.to(memory_format=torch.channels_last)
    net = nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model
    torch.manual_seed(seed * 7919 + 1 + ddp.rank)  # augmentation and dropout: per rank
    shuffle = torch.Generator().manual_seed(seed)  # batch order: the same on every rank

    by_speaker = model_name in train.speaker_norm.models
    if by_speaker and (data.speakers_train is None or data.speakers_val is None):
        raise ValueError("train.speaker_norm needs each row's speaker (FoldData.speakers_*)")
    per_layer = head and not models.reads_grid(model_name)   # T is the encoder's layers
    normalisation = fit_normalisation(data.x_train, train.utterance_norm, per_frame=per_layer,
                                      speakers=data.speakers_train if by_speaker else None,
                                      speaker_prior=train.speaker_norm.prior,
                                      pooled=models.reads_grid(model_name))
    augment = Augment(train.augment, normalisation)
    x_train = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32))
    y_train = torch.from_numpy(data.y_train.astype(np.int64))
    # each training actor's statistics, from its clean rows (float32, as the batches)
    train_speaker = (tuple(t.float() for t in speaker_statistics(
        x_train, data.speakers_train, normalisation["speaker"], utterance=train.utterance_norm))
        if by_speaker else None)
    x_val = torch.from_numpy(np.asarray(data.x_val, dtype=np.float32))
    x_val = normalise(x_val, normalisation, speaker_statistics(
        x_val, data.speakers_val, normalisation["speaker"], utterance=train.utterance_norm)
        if by_speaker else None)
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
            xb = augment(x_train[index].to(device),
                         None if train_speaker is None else tuple(t[index] for t in train_speaker))
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
        record = {"epoch": epoch, "train_loss": train_loss,
                  **{f"val_{k}": v for k, v in value.items()},
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


# ---------------------------------------------------------------- folds side by side
@dataclass
class Job:
    """One model to train: a fold's member (`run` names it in the logs), from `seed`."""
    fold: Any
    member: int
    run: str
    data: FoldData
    seed: int


def job_workers(train: TrainParams, jobs: int) -> int:
    """Worker processes for `jobs` models: `train.workers` (0: one per core), at most one
    per job; 1 (in this process) on CUDA or MPS, under torchrun, or for a single job."""
    if jobs < 2 or int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return 1
    if select_device(train.device).type != "cpu":
        return 1                   # one accelerator: its processes would only queue for it
    return min(train.workers or default_workers(), jobs)


def train_jobs(model_name: str, config: Any, train: TrainParams, jobs: list[Job],
               labels: list[str], feature_params: dict[str, Any],
               on_epoch: Callable[[str, dict[str, float]], None] | None, progress: bool,
               log=print) -> Iterator[dict[str, Any]]:
    """`train_fold` of each job, yielded in job order. With several jobs on a CPU, in
    `job_workers` forked processes of one thread each: each model is trained exactly as
    it is alone (its seed, one thread), so the weights are the same byte for byte, and
    `on_epoch` sees each job's epochs, in job order, once the job is done."""
    workers = job_workers(train, len(jobs))
    if workers == 1:
        for job in jobs:
            yield train_fold(
                model_name, config, train, job.data, labels, seed=job.seed,
                feature_params=feature_params,
                on_epoch=(lambda record, run=job.run: on_epoch(run, record)) if on_epoch else None,
                progress=progress)
        return
    log(f"{model_name}: {len(jobs)} models in {workers} processes, one thread each",
        file=sys.stderr)
    epochs = multiprocessing.get_context("fork").Value("q", 0)   # run so far, by every worker

    def train_job(index: int) -> dict[str, Any]:       # in a forked worker
        torch.set_num_threads(1)    # one thread per process: the float sums of a plain run

        def tick(record: dict[str, float]) -> None:
            with epochs.get_lock():
                epochs.value += 1
        job = jobs[index]
        return train_fold(model_name, config, train, job.data, labels, seed=job.seed,
                          feature_params=feature_params, on_epoch=tick, progress=False,
                          device=torch.device("cpu"))

    bar = tqdm(total=len(jobs) * train.epochs, desc=f"{model_name} ({len(jobs)} models)",
               unit="epoch", disable=not progress, file=sys.stderr)
    with bar:
        def update() -> None:
            bar.update(epochs.value - bar.n)
        for job, result in zip(jobs, fork_map(train_job, len(jobs), workers, update),
                               strict=True):
            if on_epoch is not None:
                for record in result["history"]:
                    on_epoch(job.run, record)
            bar.total -= train.epochs - len(result["history"])     # stopped early
            update()
            yield result


# ---------------------------------------------------------------- one dvc.yaml cell
def with_copies(x: np.ndarray, y: np.ndarray, speakers: np.ndarray,
                copies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows `x` (N, F, T) with their changed copies (N, K, F, T) after them, copy
    by copy: (N(1 + K), F, T), the labels repeated. Copy k of a speaker is a speaker of its
    own, `<speaker>~copy<k + 1>` (one session: its room, voice or codec), so that
    `train.speaker_norm` standardises a session by its own statistics, as it would a
    deployed speaker's recordings."""
    n, k = copies.shape[:2]
    if n != len(x):
        raise ValueError(f"{n} rows of copies for {len(x)} training rows")
    sessions = [np.asarray(speakers, dtype=object)] + [
        np.array([f"{s}~copy{c + 1}" for s in speakers], dtype=object) for c in range(k)]
    return (np.concatenate([x, *copies.transpose(1, 0, 2, 3)]), np.tile(y, 1 + k),
            np.concatenate(sessions))


def train_cell(model_name: str, subset: str, params: Params, table: pd.DataFrame,
               features: np.ndarray, feature_params: dict[str, Any],
               save: Callable[[int, dict[str, Any]], None],
               on_epoch: Callable[[str, dict[str, float]], None] | None = None,
               progress: bool = True, log=print,
               copies: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Train `model_name` on `subset` for every fold in `params.split`: `train.ensemble`
    models per fold, with seeds from `train.seed` up (one checkpoint holds them all).

    `table` is data.csv and `features` its rows (N, F, T); `copies` (N, K, F, T), changed
    copies of each row (encoded.h5's, `encode.copies`), join the training rows of every
    fold (`with_copies`), never its validation or test rows. `save(fold_number, checkpoint)`
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
    train = params.train
    if models.is_head(model_name):          # train_fold applies the head's recipe
        _, skipped = head_recipe(train)
        if skipped:
            log(f"{model_name}: {', '.join(skipped)} act on log-mel frames, not on a head's "
                f"pooled encoder layers: not applied to it", file=sys.stderr)
    config = params.section(model_name)
    single = train.ensemble == 1
    jobs: list[Job] = []                    # every fold's members, in fold order
    for fold in from_split(sub["actor"], params.split, log=log):
        sides = split_rows(sub, fold)
        if train.monitor == "none":           # no selection: the validation actors train too
            fit, held = np.concatenate([sides.train, sides.validation]), sides.validation[:0]
        else:
            fit, held = sides.train, sides.validation
        actors = sub["actor"].to_numpy()
        x_fit, y_fit, speakers_fit = features[rows[fit]], y[fit], actors[fit]
        if copies is not None:
            x_fit, y_fit, speakers_fit = with_copies(x_fit, y_fit, speakers_fit,
                                                     copies[rows[fit]])
        data = FoldData(x_fit, y_fit, features[rows[held]], y[held], speakers_fit,
                        actors[held])
        for member in range(train.ensemble):   # member m trains as train.seed + m alone would
            run = fold.name if single else f"{fold.name}/member{member + 1}"
            jobs.append(Job(fold, member, run, data, (train.seed + member) * 1000 + fold.number))
    summaries, fold_results = [], []
    trained = train_jobs(model_name, config, train, jobs, labels, feature_params, on_epoch,
                         progress, log)
    for job, result in zip(jobs, trained, strict=True):
        fold, data = job.fold, job.data
        fold_results.append(result)
        if job.member + 1 < train.ensemble:
            continue
        results, fold_results = fold_results, []
        checkpoint = {
            "state_dict": (results[0]["state_dict"] if single
                           else [r["state_dict"] for r in results]),
            "model": model_name,
            "config": asdict(config),
            "labels": labels,
            "normalisation": results[0]["normalisation"],   # the same rows, the same statistics
            "feature_params": dict(feature_params),
            "fold": fold_record(fold),
            "subset": subset,
            "best_epoch": (results[0]["best_epoch"] if single
                           else [r["best_epoch"] for r in results]),
            "monitor": train.monitor,
        }
        save(fold.number, checkpoint)
        for member, result in enumerate(results):
            summaries.append({"fold": fold.number, **({} if single else {"member": member + 1}),
                              "best_epoch": result["best_epoch"],
                              "epochs_run": len(result["history"]),
                              "validation": {k: round(v, 4)
                                             for k, v in (result["best"] or {}).items()},
                              "train_rows": int(len(data.y_train)),
                              "validation_rows": int(len(data.y_val)),
                              "parameters": result["parameters"],
                              "seconds_per_epoch": round(result["seconds_per_epoch"], 2)})
    return summaries
