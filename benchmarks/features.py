"""Benchmark: the features stage's code against a plain per-file librosa implementation.

Both compute the same log-mel (params.yaml `features`, kind logmel): resample, trim silence,
centre-crop/pad, Slaney mel power spectrogram, dB with a per-utterance top_db floor.
The librosa side is what most SER repositories do: one file at a time, in one process.

    python benchmarks/features.py                      # ../shared/ravdess-dev, 720 files
    python benchmarks/features.py --root DIR --limit 100
    python benchmarks/features.py --as-wav          # the same samples as 16-bit WAV files

Prints files/s for each and their ratio (measured in this run, alternating the two
`--repeat` times and keeping the best of each), the CPU time per file of each (user + system,
workers included: a figure that a busy machine disturbs less than wall time), the time and
peak memory of the stage on a full-size corpus (every file listed twice: 1440 for the
720 dev files; main process and workers together), and how closely the two agree. Needs
the `bench` extra (librosa, psutil, threadpoolctl): pip install -e ".[bench]".

`--as-wav` first writes the files, sample for sample, as 16-bit PCM WAV (the format of
the Zenodo corpus; the dev copy stores the same PCM as FLAC) into a temporary folder and
times both ways on those: FLAC decoding costs both ways the same CPU per file, which
bounds the ratio on FLAC input.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from speech_emotion import features, params as params_module
from speech_emotion.pool import default_workers
from speech_emotion.ravdess import is_speech_audio_name

# Float32 rounding on identical clips; end to end the resamplers differ (sinc vs soxr).
TRANSFORM_TOLERANCE_DB = 0.01
END_TO_END_TOLERANCE_DB = 0.5
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "ravdess-dev"


class PeakMemory:
    """Peak memory of this process and its children (the workers), sampled every 100 ms.

    `pss`: the summed proportional set size, which shares the pages the forked workers
    hold in common with the main process out between them: the true footprint.
    `rss`: the summed resident set size, which counts shared pages once per process: an
    upper bound.
    """

    def __init__(self):
        self.pss = self.rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            pss = rss = 0
            for process in [me] + me.children(recursive=True):
                try:
                    memory = process.memory_full_info()
                except psutil.Error:
                    continue
                pss, rss = pss + memory.pss, rss + memory.rss
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def stage_way(paths, p):
    """Features, wall seconds, CPU seconds (this process and its workers, reaped at the end)."""
    cpu = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    feats = features.extract_files(paths, p, progress=False)
    wall = time.perf_counter() - start
    cpu = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    return feats, wall, cpu


def centre_fit(y: np.ndarray, length: int) -> np.ndarray:
    excess = len(y) - length
    if excess >= 0:
        return y[excess // 2: excess // 2 + length]
    left = -excess // 2
    return np.pad(y, (left, -excess - left))


def librosa_logmel(y: np.ndarray, p) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=p.sample_rate, n_fft=p.n_fft, win_length=p.win_length, hop_length=p.hop_length,
        n_mels=p.n_mels, fmin=p.f_min, fmax=p.f_max, power=2.0, center=True,
        pad_mode="reflect", htk=False, norm="slaney")
    return librosa.power_to_db(mel, ref=1.0, amin=features.POWER_FLOOR, top_db=p.top_db)


def librosa_file(path, p) -> np.ndarray:
    import librosa

    y, _ = librosa.load(path, sr=p.sample_rate, mono=True)      # soxr resampling
    y, _ = librosa.effects.trim(y, top_db=p.trim_db, frame_length=p.n_fft,
                                hop_length=p.hop_length)
    return librosa_logmel(centre_fit(y, features.n_samples(p)), p)


def librosa_way(paths, p):
    # One BLAS/OpenMP thread, as in the stage's workers: spinning threads on a busy machine
    # would slow the baseline down and flatter the ratio.
    with threadpool_limits(1):
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        start = time.perf_counter()
        feats = np.stack([librosa_file(path, p) for path in paths])
        return feats, time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu


def agreement(paths, ours, theirs, p) -> None:
    import librosa

    # 1. the transform alone, on the very same clips
    sample = paths[:: max(1, len(paths) // 20)]
    clips = [features.fix_length(features.load_wave(path, p.sample_rate), p) for path in sample]
    with torch.inference_mode():
        mine = features.Extractor(p)(torch.stack(clips)).numpy()
    reference = np.stack([librosa_logmel(clip.numpy(), p) for clip in clips])
    transform_diff = float(np.abs(mine - reference).max())
    print(f"  transform on identical clips ({len(sample)} files): "
          f"max |diff| {transform_diff:.4f} dB")
    # 2. the silence trim alone, on the very same resampled waves
    same = 0
    for path in sample:
        wave = features.load_wave(path, p.sample_rate)
        _, (start, end) = librosa.effects.trim(wave.numpy(), top_db=p.trim_db,
                                              frame_length=p.n_fft, hop_length=p.hop_length)
        same += features.nonsilent_span(wave, p.trim_db, p.n_fft, p.hop_length) == (start, end)
    print(f"  trim span on identical waves: {same}/{len(sample)} files identical")
    # 3. end to end (the resamplers differ: torchaudio sinc vs soxr)
    per_file = np.abs(ours - theirs).mean(axis=(1, 2))
    print(f"  end to end: mean |diff| per file: median {np.median(per_file):.3f} dB, "
          f"90th percentile {np.percentile(per_file, 90):.3f} dB, "
          f"{(per_file < 1.0).mean():.1%} of files under 1 dB "
          f"(log-mel range {ours.min():.1f} to {ours.max():.1f} dB)")
    if transform_diff > TRANSFORM_TOLERANCE_DB or np.median(per_file) > END_TO_END_TOLERANCE_DB:
        raise SystemExit(f"the two ways disagree: more than {TRANSFORM_TOLERANCE_DB} dB on the "
                         f"same clips or a median of {END_TO_END_TOLERANCE_DB} dB end to end")


def as_wav(paths: list[Path], folder: Path) -> list[Path]:
    """The same samples as 16-bit PCM WAV under `folder/Actor_NN/`, in the same order."""
    written = []
    for path in paths:
        if sf.info(str(path)).subtype != "PCM_16":
            raise SystemExit(f"{path}: --as-wav expects 16-bit PCM audio")
        data, rate = sf.read(path, dtype="int16", always_2d=True)
        target = folder / path.parent.name / (path.stem + ".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, data, rate, subtype="PCM_16")
        written.append(target)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each way this often, alternating, and keep the best")
    parser.add_argument("--params", type=Path, default=params_module.DEFAULT_PATH)
    parser.add_argument("--as-wav", action="store_true",
                        help="time both ways on the files rewritten as 16-bit WAV")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)                      # the agreement checks; the stage sets its own
    p = params_module.load(args.params).features
    if p.kind != "logmel":
        raise SystemExit("the benchmark compares log-mel: set features.kind: logmel")
    paths = sorted(path for path in args.root.glob("Actor_*/*") if is_speech_audio_name(path))
    paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no RAVDESS speech audio under {args.root}")
    with tempfile.TemporaryDirectory() as folder:
        if args.as_wav:
            paths = as_wav(paths, Path(folder))
        print(f"{len(paths)} files under {args.root}{' as 16-bit WAV' if args.as_wav else ''}; "
              f"{default_workers()} cores; params: {args.params}")
        run(paths, p, args.repeat)


def run(paths: list[Path], p, repeat: int) -> None:
    with PeakMemory() as memory:                  # a full corpus, before librosa is imported
        corpus_start = time.perf_counter()
        features.extract_files(paths + paths, p, progress=False)
        corpus_s = time.perf_counter() - corpus_start
    for path in paths[:3]:                        # librosa warm-up (numba compiles), untimed
        librosa_file(path, p)
    workers = default_workers() if len(paths) > p.batch_size else 0
    stage_s = librosa_s = stage_cpu = librosa_cpu = float("inf")
    for _ in range(repeat):                       # alternate, so both see the same machine
        ours, seconds, cpu = stage_way(paths, p)
        stage_s, stage_cpu = min(stage_s, seconds), min(stage_cpu, cpu)
        theirs, seconds, cpu = librosa_way(paths, p)
        librosa_s, librosa_cpu = min(librosa_s, seconds), min(librosa_cpu, cpu)

    n = len(paths)
    stage_rate, librosa_rate = n / stage_s, n / librosa_s
    decode_cpu = cpu_seconds(resource.RUSAGE_SELF)
    for path in paths:                            # what both ways spend on decoding alone
        sf.read(path, dtype="float32")
    decode_cpu = cpu_seconds(resource.RUSAGE_SELF) - decode_cpu
    print(f"stage (torchaudio, batched, {workers} worker processes): "
          f"{stage_rate:7.1f} files/s ({stage_s:.1f} s), CPU {1e3 * stage_cpu / n:.2f} ms/file")
    print(f"librosa (per file, 1 process, 1 thread): {librosa_rate:7.1f} files/s "
          f"({librosa_s:.1f} s), CPU {1e3 * librosa_cpu / n:.2f} ms/file")
    print(f"ratio stage / librosa: {stage_rate / librosa_rate:.2f}x files/s; "
          f"{librosa_cpu / stage_cpu:.2f}x less CPU per file")
    print(f"decoding alone (soundfile, both ways): CPU {1e3 * decode_cpu / n:.2f} ms/file")
    ceiling = max(workers, 1) * n / decode_cpu    # every core decoding, nothing else done
    print(f"ceiling with this decoding: {ceiling:7.1f} files/s on {max(workers, 1)} cores = "
          f"{ceiling / librosa_rate:.2f}x librosa, were everything after decoding free")
    print(f"stage on {2 * len(paths)} files (each listed twice): {corpus_s:.1f} s, peak memory "
          f"{memory.pss / 2**20:.0f} MiB PSS (summed RSS, an upper bound: "
          f"{memory.rss / 2**20:.0f} MiB)")
    print("agreement (log-mel dB):")
    agreement(paths, ours, theirs, p)


if __name__ == "__main__":
    main()
