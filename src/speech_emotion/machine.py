"""Say what a machine ran: the CPU, the kernels PyTorch picked on it, library versions and
the environment pins that steer them (docs/REPRODUCIBILITY.md).

    >>> from speech_emotion import machine
    >>> machine.describe()["torch_cpu_capability"]
    'AVX512'

Everything in the dict is a plain str / bool / int / None (JSON-able), and a field that
cannot be read here is None rather than an error. Reading it imports torch, which reads
the pins once: set them before the first `import torch` of the process.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

# Environment variables that choose which kernels a library runs (or how many threads).
PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS",
            "NPY_DISABLE_CPU_FEATURES")
CPUINFO = Path("/proc/cpuinfo")


def describe() -> dict[str, Any]:
    """The machine and its numeric libraries, as a JSON-able dict."""
    import numpy
    import torch

    cpu = cpu_info()
    return {
        "cpu_model": cpu["model"],
        "cpu_vendor": cpu["vendor"],
        "cpu_flags_avx2": cpu["avx2"],
        "cpu_flags_avx512f": cpu["avx512f"],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "torchaudio": _version("torchaudio"),
        "torch_cpu_capability": _call(lambda: torch.backends.cpu.get_cpu_capability()),
        "torch_threads": torch.get_num_threads(),
        "mkl_available": _call(lambda: bool(torch.backends.mkl.is_available())),
        "mkl_version": _build_version(r"Math Kernel Library Version ([\d.]+)"),
        "onednn_available": _call(lambda: bool(torch.backends.mkldnn.is_available())),
        "onednn_version": _build_version(r"(?:MKL-DNN|oneDNN) v([\d.]+)"),
        "pins": {name: os.environ.get(name) for name in PIN_VARS},
    }


def cpu_info(path: Path = CPUINFO) -> dict[str, Any]:
    """CPU model name, vendor and the AVX2 / AVX-512F flags, from /proc/cpuinfo (Linux);
    elsewhere the model from `platform` and None for what it does not say."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if not line.strip():
            break                                   # the first processor's block is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", fields.get("Features"))
    flag_set = set(flags.split()) if flags is not None else None
    return {
        "model": fields.get("model name") or platform.processor() or None,
        "vendor": fields.get("vendor_id"),
        "avx2": None if flag_set is None else "avx2" in flag_set,
        "avx512f": None if flag_set is None else "avx512f" in flag_set,
    }


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:               # not installed, or broken: say so by None
        return None


def _call(read) -> Any:
    try:
        return read()
    except Exception:
        return None


def _build_version(pattern: str) -> str | None:
    """A library version from torch's build description (`torch.__config__.show()`)."""
    import torch

    shown = _call(torch.__config__.show) or ""
    found = re.search(pattern, shown)
    return found[1] if found else None


if __name__ == "__main__":
    import json

    json.dump(describe(), sys.stdout, indent=1)
    print()
