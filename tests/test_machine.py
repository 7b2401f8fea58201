"""machine.describe: what a machine ran, as JSON."""

from __future__ import annotations

import json

from speech_emotion import machine


def test_describe_is_json_and_names_the_kernels(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")     # read back, not applied: torch is loaded
    monkeypatch.delenv("MKL_CBWR", raising=False)
    info = json.loads(json.dumps(machine.describe()))
    for key in ("cpu_model", "cpu_vendor", "torch_cpu_capability", "python", "numpy", "torch",
                "torchaudio", "mkl_available", "mkl_version", "onednn_available",
                "onednn_version", "pins"):
        assert key in info
    assert set(info["pins"]) == set(machine.PIN_VARS)
    assert info["pins"]["ATEN_CPU_CAPABILITY"] == "avx2" and info["pins"]["MKL_CBWR"] is None
    import torch
    assert info["torch"] == torch.__version__
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_cpu_info_reads_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                       "model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n"
                       "flags\t\t: fpu sse avx avx2 avx512f avx512bw\n\n"
                       "processor\t: 1\nvendor_id\t: Other\n")
    assert machine.cpu_info(cpuinfo) == {
        "model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "vendor": "GenuineIntel",
        "avx2": True, "avx512f": True}


def test_cpu_info_without_proc(tmp_path):
    info = machine.cpu_info(tmp_path / "missing")
    assert info["vendor"] is None and info["avx2"] is None
