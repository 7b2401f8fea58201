"""The pretrained encoder's output for every utterance: `data/processed/encoded.h5`.

    file --audio.read, mono, 16 kHz (features.to_model_rate)--> (S,) the whole utterance
         --encoders.whisper.Encoder--> (L, T, D) every hidden state, T = 50 a second
         --mean and std over the T frames of each layer--> (L, 2, D)
         --each layer's frames averaged over G equal stretches (encode.grid)--> (L, D, G)

HDF5 layout (beside features.h5, the same row order and /index):

    /                 attributes: every `encode` param, the weights' sha256, the encoder's
                      n_states (L) and d_model (D)
    /index            compound (N,): path, stem and the seven codes of each row (store.py)
    /pooled           float32 (N, L, 2, D): each layer's mean and std over the row's frames
    /lengths          int32 (N,): encoder frames of each row (about 50 a second)
    /offsets          int64 (N + 1,): row i's frames are /frames[offsets[i]:offsets[i + 1]]
    /frames           float16 (sum of lengths, D): the last layer's frames (encode.frames: last)
    /copies           float32 (N, K, L, 2, D): the pooled statistics of K training copies of
                      each row (encode.copies; waveforms.training_copy), absent when K = 0
    /grid             float16 (N, L, D, G): every layer's frames on the utterance's grid,
                      the input of the frame heads (encode.grid: G; absent when 0)
    /copies_grid      float16 (N, K, L, D, G): the copies' grids

Heads read /pooled as features (N, F, T) = (N, 2D, L): mean then std of each dimension
(F), for each layer (T), so the classifiers' training, scoring and checkpoint code serve
them unchanged; the frame heads read /grid as (N, F, T) = (N, L*D, G), layer by layer.
The grid makes every utterance one fixed-size array (no padding, no mask), as the log-mel
store's fixed clip; a stretch is 1/G of the utterance (about 0.1 s of a 3.5 s one at 32).
With `pad_30s` the encoder sees 30 s, but only the frames of the real
utterance are pooled and stored (the rest encode the padding).

Byte-stable: one utterance per call (no batch padding), one thread per worker process,
rows written in table order, no timestamps: the same files, params and weights give the
same bytes on one machine, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import audio, features, waveforms
from .atomic import atomic_path
from .audio import AudioError
from .params import EncodeParams
from .pool import default_workers, fork_pool
from .store import INDEX, NOT_FEATURE_DEFINING, FeatureSet, StoreError, index_records, read_dataset

POOLED, LENGTHS, OFFSETS, FRAMES, COPIES = "pooled", "lengths", "offsets", "frames", "copies"
GRID, COPIES_GRID = "grid", "copies_grid"
# Attributes that are not encode params but define the output: a head trained on one
# store is refused on a store made with other weights (store.feature_differences).
WEIGHT_ATTRS = ("weights_sha256", "n_states", "d_model")


@dataclasses.dataclass
class Encoding:
    """One utterance: every layer's pooled statistics, the last layer's frames, every
    layer's grid."""

    pooled: np.ndarray            # (L, 2, D) float32: mean, std over frames
    frames: np.ndarray | None     # (T, D) float16, or None
    copies: np.ndarray | None = None  # (K, L, 2, D) float32: the changed copies' pooled
    grid: np.ndarray | None = None    # (L, D, G) float16: the frames on the grid, or None
    copies_grid: np.ndarray | None = None  # (K, L, D, G) float16


def load_encoder(params: EncodeParams, device: str | torch.device = "cpu"):
    """The encoder and its weights' attributes (`WEIGHT_ATTRS`), for the encode params."""
    return open_encoder(params.model, params.pad_30s, download=params.download, device=device)


def open_encoder(model: str, pad_30s: bool, *, download: bool, sha256: str | None = None,
                 device: str | torch.device = "cpu"):
    """`whisper.Encoder` of the weights `weights.resolve(model)` finds (`sha256`: exactly
    these, as a head's checkpoint names them), and their attributes."""
    from .encoders import weights, whisper

    folder = weights.resolve(model, sha256=sha256, download=download)
    encoder = whisper.Encoder(folder, pad_30s=pad_30s, device=device)
    attrs = {"weights_sha256": weights.file_sha256(folder / "model.bin"),
             "n_states": encoder.n_states, "d_model": encoder.d_model}
    return encoder, attrs


def encode_wave(encoder, wave: torch.Tensor, keep_frames: bool, grid: int = 0) -> Encoding:
    """(S,) at 16 kHz -> Encoding; statistics in float64 over the real-length frames;
    `grid`: also every layer's frames averaged over that many equal stretches."""
    from .encoders.whisper import encoder_frames  # here: reading the store needs none of it

    states = encoder(wave.float())                                   # (L, T', D)
    states = states[:, : encoder_frames(len(wave))].double()         # the utterance's frames
    pooled = torch.stack([states.mean(dim=1), states.std(dim=1, correction=0)], dim=1)
    frames = states[-1].numpy().astype(np.float16) if keep_frames else None
    cells = (torch.nn.functional.adaptive_avg_pool1d(states.transpose(1, 2), grid)  # (L, D, G)
             .numpy().astype(np.float16) if grid else None)
    return Encoding(pooled.float().numpy(), frames, grid=cells)      # (L, 2, D)


def encode_file(path: str | Path, encoder, keep_frames: bool,
                changes: Sequence[tuple[waveforms.Change, np.random.Generator]] = (),
                grid: int = 0) -> Encoding:
    """Read, mix down, resample to 16 kHz and encode one file; AudioError names it, also
    when it is longer than Whisper's window (30 s), which the encoder cannot take whole.
    `changes`: also encode a copy of the 16 kHz wave made by each (change, rng), pooled
    statistics (`Encoding.copies`) and, with `grid`, its grid (`Encoding.copies_grid`)."""
    from .encoders.whisper import N_FFT, SAMPLE_RATE, WINDOW_S

    data, rate = audio.read(path)
    wave = features.to_model_rate(data, rate, SAMPLE_RATE)
    if len(wave) < N_FFT:
        raise AudioError(f"{path}: {len(wave)} samples at 16 kHz; the encoder needs at least "
                         f"{N_FFT} (one 25 ms frame)")
    if len(wave) > WINDOW_S * SAMPLE_RATE:
        raise AudioError(f"{path}: {len(wave) / SAMPLE_RATE:.1f} s long; the encoder takes an "
                         f"utterance of at most {WINDOW_S} s (Whisper's window): cut the "
                         "recording into utterances, or leave it out of the corpus")
    encoding = encode_wave(encoder, wave, keep_frames, grid)
    if changes:
        samples, most = wave.numpy(), WINDOW_S * SAMPLE_RATE   # a slower copy: cut to fit
        copies = [encode_wave(encoder, torch.from_numpy(np.ascontiguousarray(
            change(samples, SAMPLE_RATE, rng)[:most])), False, grid) for change, rng in changes]
        encoding.copies = np.stack([c.pooled for c in copies])          # (K, L, 2, D)
        if grid:
            encoding.copies_grid = np.stack([c.grid for c in copies])   # (K, L, D, G)
    if not (np.isfinite(encoding.pooled).all()
            and (encoding.copies is None or np.isfinite(encoding.copies).all())):
        raise AudioError(f"{path}: the encoder's output is not finite")
    return encoding


def copy_changes(params: EncodeParams, speakers: Sequence[Any], utterances: Sequence[str]
                 ) -> Callable[[int], list[tuple[waveforms.Change, np.random.Generator]]]:
    """Row i -> the changes that make its `params.copies` training copies: sessions of
    its speaker (`waveforms.training_copies`); `utterances` name the rows (their stems)."""
    def changes(i: int):
        return waveforms.training_copies(params.copy_kinds, params.copies, params.copy_seed,
                                         str(speakers[i]), str(utterances[i]))
    return changes


_job: dict = {}


def _worker(i: int) -> tuple[int, Encoding | str]:
    torch.set_num_threads(1)
    try:
        changes = _job["changes_of"](i) if _job["changes_of"] else ()
        return i, encode_file(_job["paths"][i], _job["encoder"], _job["keep_frames"], changes,
                              _job["grid"])
    except AudioError as err:
        return i, str(err)


def encode_files(paths: Sequence[str | Path], params: EncodeParams, encoder,
                 progress: bool = True,
                 changes_of: Callable[[int], Sequence[tuple[waveforms.Change,
                                                            np.random.Generator]]] | None = None
                 ) -> list[Encoding]:
    """Encodings of each file, in order; AudioError naming the first bad file.
    `params.workers` forked processes (0: one per core), each on one thread.
    `changes_of(i)`: the changed copies of file i to encode too (`encode_file`)."""
    workers = params.workers or default_workers()
    workers = min(workers, len(paths))
    _job.update(paths=[Path(p) for p in paths], encoder=encoder,
                keep_frames=params.frames == "last", changes_of=changes_of, grid=params.grid)
    out: list[Encoding | None] = [None] * len(paths)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tqdm(total=len(paths), unit="utt", desc="encode", disable=not progress) as bar, \
                (fork_pool(workers) if workers > 1 else contextlib.nullcontext()) as pool:
            results = (pool.imap(_worker, range(len(paths)), chunksize=4) if pool is not None
                       else map(_worker, range(len(paths))))
            for i, result in results:
                if isinstance(result, str):
                    raise AudioError(result)
                out[i] = result
                bar.update(1)
    finally:
        torch.set_num_threads(before)
        _job.clear()
    return out  # type: ignore[return-value]


def encode_table(table: pd.DataFrame, root: Path, params: EncodeParams, encoder,
                 progress: bool = True) -> list[Encoding]:
    """The encode stage's encodings of data.csv's rows (files under `root`), with
    `params.copies` training copies of each: sessions of its actor (`copy_changes`)."""
    changes = (copy_changes(params, table["actor"].tolist(), table["stem"].tolist())
               if params.copies else None)
    return encode_files([Path(root) / path for path in table["path"]], params, encoder,
                        progress, changes_of=changes)


# ---------------------------------------------------------------- the store
def write(path: str | Path, table: pd.DataFrame, encodings: Sequence[Encoding],
          params: EncodeParams, weight_attrs: dict[str, Any]) -> None:
    """encoded.h5 for the rows of `table` (data.csv), atomically."""
    if len(table) != len(encodings):
        raise StoreError(f"{len(table)} rows but {len(encodings)} encodings")
    pooled = np.stack([e.pooled for e in encodings]).astype(np.float32)  # (N, L, 2, D)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in {**dataclasses.asdict(params), **weight_attrs}.items():
            f.attrs[key] = attr_value(value)
        f.create_dataset(INDEX, data=index_records(table), track_times=False)
        f.create_dataset(POOLED, data=pooled, track_times=False)
        if params.frames == "last":
            lengths = np.array([len(e.frames) for e in encodings], dtype=np.int32)
            offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
            f.create_dataset(LENGTHS, data=lengths, track_times=False)
            f.create_dataset(OFFSETS, data=offsets, track_times=False)
            f.create_dataset(FRAMES, data=np.concatenate([e.frames for e in encodings]),
                             track_times=False)
        if encodings and encodings[0].copies is not None:
            f.create_dataset(COPIES, data=np.stack([e.copies for e in encodings]).astype(
                np.float32), track_times=False)                          # (N, K, L, 2, D)
        if params.grid:
            f.create_dataset(GRID, data=np.stack([e.grid for e in encodings]),
                             track_times=False)                          # (N, L, D, G)
            if encodings and encodings[0].copies_grid is not None:
                f.create_dataset(COPIES_GRID, data=np.stack([e.copies_grid for e in encodings]),
                                 track_times=False)                      # (N, K, L, D, G)


def attr_value(value: Any) -> Any:
    """A param as an HDF5 attribute: a list as its JSON text (compared as such)."""
    return json.dumps(value) if isinstance(value, list) else value


def as_inputs(pooled: np.ndarray) -> np.ndarray:
    """(N, L, 2, D) pooled statistics -> (N, 2D, L) a head's input: each dimension's mean,
    then each one's std (F), for every layer (T)."""
    n, layers, stats, dim = pooled.shape
    return np.ascontiguousarray(pooled.transpose(0, 2, 3, 1).reshape(n, stats * dim, layers))


def attr_names() -> list[str]:
    return [f.name for f in dataclasses.fields(EncodeParams)] + list(WEIGHT_ATTRS)


def grid_inputs(grid: np.ndarray) -> np.ndarray:
    """(..., L, D, G) grids -> (..., L*D, G) a frame head's input, layer by layer."""
    return grid.reshape(*grid.shape[:-3], -1, grid.shape[-1])


def read(path: str | Path, grid: bool = False) -> FeatureSet:
    """/pooled as features (N, 2D, L), its index and its attributes; /copies, if stored,
    as `copies` (N, K, 2D, L). `grid`: /grid as features (N, L*D, G) and /copies_grid as
    `copies` (N, K, L*D, G) instead, kept in float16 (the training code takes float32
    batches of them)."""
    if grid:
        with contextlib.suppress(OSError), h5py.File(path, "r") as f:
            if GRID not in f:
                raise StoreError(f"{path}: no frame grid (encode.grid was 0); re-run the "
                                 "encode stage with encode.grid > 0 (dvc repro encode)")
        cells, index, attrs = read_dataset(path, GRID, attr_names(), "encode")  # (N, L, D, G)
        with h5py.File(path, "r") as f:
            copies = grid_inputs(f[COPIES_GRID][()]) if COPIES_GRID in f else None
        return FeatureSet(grid_inputs(cells), index, attrs, copies)
    pooled, index, attrs = read_dataset(path, POOLED, attr_names(), "encode")  # (N, L, 2, D)
    copies = None
    with h5py.File(path, "r") as f:
        if COPIES in f:
            stored = f[COPIES][()]                                       # (N, K, L, 2, D)
            n, k = stored.shape[:2]
            copies = as_inputs(stored.reshape(n * k, *stored.shape[2:])).reshape(
                n, k, -1, stored.shape[2])                               # (N, K, 2D, L)
    return FeatureSet(as_inputs(pooled), index, attrs, copies)


def check_params(attrs: dict[str, Any], params: EncodeParams) -> None:
    """Refuse a store made with other encode params than the current ones."""
    differ = [f"{key}: file has {attrs.get(key)!r}, params say {value!r}"
              for key, value in dataclasses.asdict(params).items()
              if key not in NOT_FEATURE_DEFINING and attrs.get(key) != attr_value(value)]
    if differ:
        raise StoreError("encoded.h5 was made with other encode params (" + "; ".join(differ)
                         + "); re-run the encode stage (dvc repro encode)")
