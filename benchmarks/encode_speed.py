"""Speed of the encode stage's encoder, per utterance, against CTranslate2 in the same run.

    python benchmarks/encode_speed.py --data ../shared/ravdess --files 40
    python benchmarks/encode_speed.py --data ../shared/ravdess --files 20 --padded

One thread, as each encode worker runs. For `--files` utterances spread over the corpus:
the PyTorch encoder at the real length (every hidden state: what the encode stage runs),
CTranslate2's `encode()` at the real length (the last state only: faster-whisper's own
engine), the encode stage's whole per-utterance work (the pooled statistics, the last
layer's frames and the frame heads' grid, `--grid`), and with `--padded` the PyTorch
encoder on Whisper's 30 s window. Prints seconds
per utterance, each as a ratio to the PyTorch real-length run, and what 1440 utterances
would take on one and on two worker processes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from speech_emotion import audio, features
from speech_emotion.encoders import resolve, whisper


def waves(folder: Path, n: int) -> list[np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]
    return [features.to_model_rate(*audio.read(p), whisper.SAMPLE_RATE).float().numpy()
            for p in chosen]


def seconds_each(run, items) -> float:
    run(items[0])                                               # warm-up
    times = []
    for item in items:
        start = time.perf_counter()
        run(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder of RAVDESS audio")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--model", default="base")
    ap.add_argument("--padded", action="store_true", help="also time the 30 s window")
    ap.add_argument("--grid", type=int, default=32, help="the frame heads' grid (encode.grid)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    folder = resolve(args.model, download=False)
    items = waves(args.data, args.files)
    mean_s = statistics.mean(len(w) for w in items) / whisper.SAMPLE_RATE
    print(f"{len(items)} utterances, mean {mean_s:.2f} s; torch {torch.__version__}, 1 thread",
          file=sys.stderr)
    real = whisper.Encoder(folder)
    rows = {"pytorch, real length (encode stage)": seconds_each(real, items)}
    try:
        import ctranslate2
        engine = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32",
                                            intra_threads=1)

        def ct2(wave):
            mel = whisper.log_mel(torch.from_numpy(wave), real.filters).numpy()[None]
            engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))
        rows["ctranslate2, real length, last layer"] = seconds_each(ct2, items)
    except ImportError:
        print("ctranslate2 not installed (the whisper extra): its row is left out",
              file=sys.stderr)
    from speech_emotion import encoded

    def with_grid(wave):     # what an encode worker does per utterance: pooled and grid
        encoded.encode_wave(real, torch.from_numpy(wave), keep_frames=True, grid=args.grid)
    rows[f"pytorch, real length, pooled + frames + grid of {args.grid}"] = seconds_each(
        with_grid, items)
    if args.padded:
        rows["pytorch, padded to 30 s"] = seconds_each(whisper.Encoder(folder, pad_30s=True),
                                                       items)
    base = rows["pytorch, real length (encode stage)"]
    print("| encoder | s / utterance | ratio | 1440 utt., 1 worker | 1440 utt., 2 workers |")
    print("|---|---:|---:|---:|---:|")
    for name, s in rows.items():
        print(f"| {name} | {s:.3f} | {s / base:.2f}x | {1440 * s / 60:.1f} min | "
              f"{720 * s / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
