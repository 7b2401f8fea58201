"""Features are the same bytes on every x86 machine (docs/REPRODUCIBILITY.md).

The features of three committed fixture files (tests/data/features/, cut from the synthetic
source) are compared with their sha256 as computed on the machine that made them; and the
same features are computed in subprocesses under environment pins that make ATen, oneDNN
and MKL run the kernels of other CPUs, and must come out byte for byte the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speech_emotion import features
from speech_emotion.params import FeatureParams

DATA = Path(__file__).resolve().parent / "data" / "features"
FIXTURES = ("syn48k.flac", "syn44k_stereo.flac", "syn16k.flac")
# The features params of params.yaml when the references were made, written out so that a
# change of params.yaml does not read as a change of the computation.
PARAMS = dict(kind="logmel", sample_rate=16000, clip="trim", duration_s=3.0, offset_s=0.5,
              trim_db=40.0, n_fft=512, win_length=400, hop_length=320, n_mels=64, f_min=20.0,
              f_max=8000.0, n_mfcc=40, top_db=80.0, batch_size=2)
# sha256 of the float32 (3, F, T) features of FIXTURES, per kind (an AMD EPYC with
# AVX-512, torch 2.11.0, torchaudio 2.11.0, numpy 2.4.6).
REFERENCE = {
    "logmel": "05c6c86f4c09a4f0d86ac5c326bb88cf311b89320933bd2d409f5d92c0a61452",
    "mfcc": "6cbff3dcbc99ce03510909e489cd9f88ad42979eaa2a0c9e5b97fee4bc40fca8",
}
# Each pin makes a library take another code path on x86 (benchmarks/kernel_pins.py showed
# each of them moving the float32 chain's values): ATen's scalar kernels; ATen's and
# oneDNN's AVX2 kernels with MKL's AVX2 limit; MKL's conditional-reproducibility path
# (which moved the float64 mel product's last bits) with oneDNN's and OpenBLAS's oldest.
PINS = {
    "none": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
                       "OPENBLAS_CORETYPE": "Prescott"},
}
PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE")


def fixture_features(kind: str) -> np.ndarray:
    """The features stage's computation (extract_files, in this process) of FIXTURES."""
    params = FeatureParams(**{**PARAMS, "kind": kind})
    return features.extract_files([DATA / name for name in FIXTURES], params, progress=False,
                                  workers=0)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_fixture_features_match_the_reference_bytes(kind):
    out = fixture_features(kind)
    assert out.dtype == np.float32 and out.shape[0] == len(FIXTURES)
    # every value is on the DB_STEP grid: the rounding that absorbs the kernels' last bits
    assert np.array_equal(np.round(out / features.DB_STEP) * features.DB_STEP, out)
    assert digest(out) == REFERENCE[kind], (
        f"{kind} features of {FIXTURES} changed: sha256 {digest(out)}; if the computation "
        "was changed on purpose, update REFERENCE (and re-run the features stage)")


_CHILD = """
import json, sys, torch
sys.path.insert(0, {tests!r})
import test_feature_reproducibility as t
print(json.dumps({{kind: t.digest(t.fixture_features(kind)) for kind in ("logmel", "mfcc")}}
                 | {{"capability": torch.backends.cpu.get_cpu_capability()}}))
"""


def test_features_are_the_same_bytes_under_other_cpu_kernels():
    """Under each pin a subprocess (the libraries read the pins once, at load) computes the
    features of the fixtures: the bytes must not depend on which kernels ran."""
    clean = {k: v for k, v in os.environ.items() if k not in PIN_VARS}
    results = {}
    for name, pins in PINS.items():
        child = subprocess.run(
            [sys.executable, "-c", _CHILD.format(tests=str(Path(__file__).parent))],
            env={**clean, "OMP_NUM_THREADS": "1", **pins}, capture_output=True, text=True,
            timeout=300)
        assert child.returncode == 0, child.stderr[-2000:]
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
    # the pins took effect: ATen ran its scalar kernels
    assert results["aten-default"]["capability"] == "DEFAULT"
    for kind in ("logmel", "mfcc"):
        digests = {name: result[kind] for name, result in results.items()}
        assert len(set(digests.values())) == 1, f"{kind}: {digests}"
