"""Which step of the features chain depends on the CPU's code path (docs/REPRODUCIBILITY.md).

PyTorch's CPU libraries pick their kernels at run time from the CPU they find: ATen's
vectorised kernels (`ATEN_CPU_CAPABILITY` caps them), oneDNN (`ONEDNN_MAX_CPU_ISA`,
`DNNL_MAX_CPU_ISA`), MKL (`MKL_ENABLE_INSTRUCTIONS`, `MKL_CBWR`). Those variables must be
set before torch is imported, so every setting runs in its own process. Each process
computes every intermediate of the chain twice:

- `chain/<step>`: the chain as the features stage runs it (each step on its own output);
- `alone/<step>`: the step alone, on the *reference* process's input to it, so that a
  difference there is that step's own, not one carried in from an earlier step.

and the comparison prints, for each pin setting and step, "same" or the number of values
that differ and the largest absolute difference.

    python benchmarks/kernel_pins.py                       # 6 RAVDESS-dev FLACs + 4 synthetic WAVs
    python benchmarks/kernel_pins.py --flac 0 --wav 8      # synthetic only

`--code current` (the default) probes the functions of `speech_emotion.features` (float64,
dB rounded to a grid; `chain/db_raw` is the float64 dB before the rounding, to show the
margin); `--code float32` probes the float32 torchaudio chain that the stage ran before
the features were made byte-identical (kept here, in `_float32_chain`, to show what
differed). Results: benchmarks/results/kernel_pins/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PINS: dict[str, dict[str, str]] = {
    "none": {},
    "aten=default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten=avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "onednn=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "onednn=AVX512_CORE": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "dnnl=AVX2": {"DNNL_MAX_CPU_ISA": "AVX2"},
    "mkl=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl=SSE4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "mkl_cbwr=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "all=AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                 "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "openblas=Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "openblas=Prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    "numpy=AVX2": {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX "
                                               "AVX512_CNL AVX512_ICL"},
    "all=lowest": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                   "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "MKL_CBWR": "COMPATIBLE"},
}
PIN_VARS = sorted({name for env in PINS.values() for name in env})
DEV = Path(__file__).resolve().parents[2] / "shared" / "ravdess-dev" / "Actor_01"


def _float32_chain(params):
    """The chain before the fix: torchaudio's float32 transforms (features.py at 765dda9)."""
    import torch
    import torchaudio

    from speech_emotion import features

    resampler = torchaudio.transforms.Resample(48000, params.sample_rate)
    stft = torchaudio.transforms.Spectrogram(
        n_fft=params.n_fft, win_length=params.win_length, hop_length=params.hop_length,
        power=None, center=True, pad_mode="reflect")
    mel = torchaudio.transforms.MelScale(
        n_mels=params.n_mels, sample_rate=params.sample_rate, f_min=params.f_min,
        f_max=params.f_max, n_stft=params.n_fft // 2 + 1, norm="slaney", mel_scale="slaney")

    def resample(mono):
        bucket = 4800
        padded = torch.nn.functional.pad(mono, (0, -mono.shape[0] % bucket))
        return resampler(padded)[: -(-mono.shape[0] // 3)]

    def span(wave):
        return features.nonsilent_span(wave, params.trim_db, params.n_fft, params.hop_length)

    def power(clips):
        spec = stft(clips)
        return spec.real.square() + spec.imag.square()

    def db(mel_power):
        out = 10.0 * torch.log10(mel_power.clamp(min=features.POWER_FLOOR))
        return torch.maximum(out, out.amax(dim=(1, 2), keepdim=True) - params.top_db)

    return dict(resample=resample, span=span, power=power, mel=mel, db=db,
                tables={"resample_kernel": resampler.kernel, "mel_fb": mel.fb},
                to_tensor=lambda a: torch.from_numpy(np.asarray(a)))


def _current_chain(params):
    """The functions `speech_emotion.features` runs now (float64, dB on a grid)."""
    import torch

    from speech_emotion import features

    ex = features.Extractor(params)

    def span(wave):
        return features.nonsilent_span(wave, params.trim_db, params.n_fft, params.hop_length)

    def power(clips):
        spec = ex.stft(clips.to(torch.float64))
        return spec.real.square() + spec.imag.square()

    def db_raw(mel_power):                       # before the rounding to the grid
        return 10.0 * torch.log10(mel_power.clamp(min=features.POWER_FLOOR))

    def db(mel_power):                           # the Extractor's own last steps
        out = db_raw(mel_power)
        out = torch.maximum(out, out.amax(dim=(1, 2), keepdim=True) - params.top_db)
        return features.on_grid(out).to(torch.float32)

    return dict(resample=lambda mono: torch.from_numpy(features.resample(mono, 48000,
                                                                         params.sample_rate)),
                span=span, power=power, mel=ex.mel, db_raw=db_raw, db=db,
                tables={"resample_kernel": features._polyphase_kernel(48000, params.sample_rate)[3],
                        "mel_fb": ex.mel.fb, "window": ex.stft.window},
                to_tensor=lambda a: torch.from_numpy(np.asarray(a)))


def probe(files: list[Path], code: str, reference: Path | None, out: Path) -> None:
    """In this process (pins already in the environment): every intermediate, to `out`."""
    import torch

    from speech_emotion import audio, params as params_module

    torch.set_num_threads(1)                             # as the features stage's workers
    p = params_module.load().features
    chain = _float32_chain(p) if code == "float32" else _current_chain(p)
    T = chain["to_tensor"]
    ref = dict(np.load(reference)) if reference else None
    result: dict[str, np.ndarray] = {}
    for name, table in chain["tables"].items():
        result[f"table/{name}"] = np.asarray(table)
    clips = []
    for i, path in enumerate(files):
        wave, rate = audio.read(path)
        assert rate == 48000, path
        mono = torch.from_numpy(audio.to_mono(wave))
        res = chain["resample"](mono)
        result[f"chain/resample/{i}"] = np.asarray(res)
        start, end = chain["span"](res)
        result[f"chain/span/{i}"] = np.array([start, end])
        clips.append(features_fit(res[start:end], p))
        if ref is not None:
            result[f"alone/span/{i}"] = np.array(chain["span"](T(ref[f"chain/resample/{i}"])))
    for k in range(0, len(files), p.batch_size):         # batches as the stage makes them
        batch = torch.stack(clips[k:k + p.batch_size])
        power = chain["power"](batch)
        mel = chain["mel"](power)
        db = chain["db"](mel)
        for name, value in (("power", power), ("mel", mel), ("db", db)):
            result[f"chain/{name}/{k}"] = np.asarray(value)
        if "db_raw" in chain:
            result[f"chain/db_raw/{k}"] = np.asarray(chain["db_raw"](mel))
        if ref is not None:
            result[f"alone/power/{k}"] = np.asarray(chain["power"](T(ref[f"clips/{k}"])))
            result[f"alone/mel/{k}"] = np.asarray(chain["mel"](T(ref[f"chain/power/{k}"])))
            result[f"alone/db/{k}"] = np.asarray(chain["db"](T(ref[f"chain/mel/{k}"])))
        result[f"clips/{k}"] = np.asarray(batch)
    result["capability"] = np.array(torch.backends.cpu.get_cpu_capability())
    np.savez(out, **result)


def features_fit(wave, params):
    from speech_emotion import features
    return features.centre_fit(wave, features.n_samples(params))


def compare(ref: dict, got: dict) -> dict[str, str]:
    """Per step (`chain/resample`, `alone/mel`, ...): 'same' or 'N differ, max |d| X'."""
    steps: dict[str, list] = {}
    for key in ref:
        if key.startswith(("chain/", "alone/", "table/")):
            step = key.rsplit("/", 1)[0] if not key.startswith("table/") else key
            steps.setdefault(step, []).append(key)
    report = {}
    for step, keys in sorted(steps.items()):
        n_diff = n_all = 0
        worst = 0.0
        for key in keys:
            a, b = ref[key], got[key]
            if a.shape != b.shape:
                n_diff += a.size
                worst = float("inf")
                continue
            same = (a.tobytes() == b.tobytes())
            n_all += a.size
            if not same:
                d = np.abs(a.astype(np.float64) - b.astype(np.float64))
                n_diff += int((a != b).sum())
                worst = max(worst, float(d.max()))
        report[step] = "same" if n_diff == 0 else f"{n_diff}/{n_all} differ, max|d| {worst:.3g}"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flac", type=int, default=6, help="RAVDESS-dev Actor_01 files")
    parser.add_argument("--wav", type=int, default=4, help="synthetic 48 kHz WAV files")
    parser.add_argument("--code", choices=["current", "float32"], default="current")
    parser.add_argument("--pins", nargs="*", default=list(PINS), help=f"of {list(PINS)}")
    parser.add_argument("--json", type=Path, help="write the table here too")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)      # child process
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.files, args.code, args.reference, args.probe)
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = sorted(DEV.glob("*.flac"))[: args.flac] if DEV.is_dir() else []
        if args.wav:
            from speech_emotion.sources import synthetic
            synthetic.generate(tmp / "syn", actors=1, seed=0, progress=False)
            files += sorted((tmp / "syn").rglob("*.wav"))[:: 60 // args.wav][: args.wav]
        clean_env = {k: v for k, v in os.environ.items() if k not in PIN_VARS}

        def run(env: dict, out: Path, reference: Path | None) -> None:
            cmd = [sys.executable, __file__, "--code", args.code, "--probe", str(out),
                   "--files", *map(str, files)]
            if reference:
                cmd += ["--reference", str(reference)]
            subprocess.run(cmd, env={**clean_env, **env}, check=True)

        reference = tmp / "reference.npz"
        run({}, reference, None)
        run({}, tmp / "reference2.npz", reference)                  # the alone/ steps too
        ref = dict(np.load(tmp / "reference2.npz"))
        table = {}
        for name in args.pins:
            out = tmp / f"{name}.npz"
            run(PINS[name], out, reference)
            got = dict(np.load(out))
            table[name] = {"capability": str(got["capability"]), **compare(ref, got)}
            print(f"{name:22s} ({table[name]['capability']})", flush=True)
            for step, verdict in table[name].items():
                if step != "capability":
                    print(f"    {step:28s} {verdict}", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"files": [f.name for f in files], "code": args.code,
                                             "pins": PINS, "result": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
