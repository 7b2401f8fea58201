"""The descriptive-analysis stage: summary counts, figures, errors, reproducibility."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from speech_emotion import describe, params
from speech_emotion.labels import build_table
from speech_emotion.ravdess import EMOTION_NAMES

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def settings():
    p = params.load(REPO / "params.yaml")
    return p.describe, p.features


@pytest.fixture(scope="module")
def small_table(synthetic_table):
    """Two actors (one male, one female) of the synthetic corpus: every cell, fast."""
    return synthetic_table[synthetic_table["actor"].isin([1, 2])].reset_index(drop=True)


@pytest.fixture(scope="module")
def described(small_table, synthetic_corpus, settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("describe")
    summary = describe.run(small_table, synthetic_corpus, *settings, out / "figures",
                           progress=False)
    return summary, out / "figures"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND", f"{path} is truncated"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------- summary
def test_summary_counts_match_the_table(described, small_table):
    summary, _ = described
    counts = summary["counts"]
    assert summary["n_utterances"] == len(small_table)
    assert summary["n_actors"] == small_table["actor"].nunique()
    expected = small_table.groupby(["emotion_name", "intensity_name"]).size()
    for emotion in EMOTION_NAMES:
        for intensity in ("normal", "strong"):
            assert counts["emotion_intensity"][emotion][intensity] == \
                expected.get((emotion, intensity), 0), (emotion, intensity)
    assert counts["emotion_intensity"]["neutral"]["strong"] == 0  # RAVDESS has no strong neutral
    assert counts["actor"] == {f"Actor_{a:02d}": int(n)
                               for a, n in small_table.groupby("actor").size().items()}
    assert counts["gender"] == small_table.groupby("gender").size().to_dict()
    assert sum(counts["emotion"].values()) == len(small_table)
    assert summary["duration_s"]["all"]["n"] == len(small_table)
    assert summary["duration_s"]["all"]["max"] == round(small_table["duration_s"].max(), 4)


def test_summary_measures_are_plausible(described):
    summary, _ = described
    silence = summary["silence_s"]
    assert 0 <= silence["leading"]["min"] <= silence["leading"]["max"]
    assert 0 < silence["speech"]["median"] < summary["duration_s"]["all"]["median"]
    # the synthetic voices are pitched like RAVDESS: female above male
    pitch = summary["pitch_hz"]
    cells = {g: [(e, i, hz) for e, by in pitch[g].items() for i, hz in by.items()]
             for g in ("male", "female")}
    assert len(cells["male"]) == len(cells["female"]) == 15      # 8 emotions x 2, no strong neutral
    assert all(60 <= hz <= 500 for g in cells for _, _, hz in cells[g])
    male, female = ([hz for *_, hz in cells[g]] for g in ("male", "female"))
    assert np.median(male) < np.median(female)
    json.dumps(summary, allow_nan=False)  # valid JSON for DVC: no NaN


# ---------------------------------------------------------------- figures
def test_every_declared_figure_is_a_png_of_the_stated_size(described, settings):
    _, figures = described
    dpi = settings[0].dpi
    assert sorted(p.name for p in figures.iterdir()) == sorted(describe.FIGURES)
    for name in describe.FIGURES:
        assert png_size(figures / name) == describe.figure_pixels(name, dpi), name


def test_dvc_yaml_declares_the_figures_and_summary():
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = pipeline["stages"]["describe"]
    assert "reports/figures" in stage["outs"]
    assert [next(iter(m)) for m in stage["metrics"]] == ["reports/summary.json"]
    declared = [p for p in pipeline["plots"] if str(p).startswith("reports/figures/")]
    assert sorted(declared) == sorted(f"reports/figures/{name}" for name in describe.FIGURES)


@pytest.mark.slow
def test_rerun_is_byte_identical(small_table, synthetic_corpus, settings, tmp_path):
    tiny = small_table[(small_table["statement"] == 1) & (small_table["repetition"] == 1)]
    first = describe.run(tiny, synthetic_corpus, *settings, tmp_path / "a", progress=False)
    again = describe.run(tiny, synthetic_corpus, *settings, tmp_path / "b", progress=False)
    assert json.dumps(again) == json.dumps(first)
    for name in describe.FIGURES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ---------------------------------------------------------------- errors
def test_empty_table_fails_clearly(synthetic_table, synthetic_corpus, settings, tmp_path):
    with pytest.raises(describe.DescribeError, match="no utterances"):
        describe.run(synthetic_table.iloc[:0], synthetic_corpus, *settings, tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_column_is_named(small_table):
    with pytest.raises(describe.DescribeError, match="missing column.*duration_s"):
        describe.check_table(small_table.drop(columns=["duration_s"]))


def test_stage_on_an_empty_table_exits_with_the_reason(synthetic_table, tmp_path):
    (tmp_path / "data" / "interim").mkdir(parents=True)
    synthetic_table.iloc[:0].to_csv(tmp_path / "data" / "interim" / "data.csv", index=False)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = subprocess.run([sys.executable, str(REPO / "stages" / "describe.py")],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode != 0
    assert "data/interim/data.csv: the table has no utterances" in result.stderr
    assert not (tmp_path / "reports").exists()  # nothing half-written


# ---------------------------------------------------------------- measures
def harmonic(f0: float, rate: int, seconds: float) -> torch.Tensor:
    t = torch.arange(int(rate * seconds)) / rate
    return sum(0.3 / k * torch.sin(2 * torch.pi * k * f0 * t) for k in range(1, 6))


@pytest.mark.parametrize("f0", [85.0, 140.0, 220.0, 370.0])
def test_yin_recovers_the_pitch_of_a_harmonic_tone(f0, settings):
    d, _ = settings
    track = describe.yin(harmonic(f0, 16000, 1.0), 16000, d.pitch_min_hz, d.pitch_max_hz,
                         160, d.yin_threshold)
    assert torch.isfinite(track).float().mean() > 0.95
    assert abs(float(track.nanmedian()) / f0 - 1) < 0.01


def test_yin_calls_noise_unvoiced(settings):
    d, _ = settings
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 16000)).float()
    track = describe.yin(noise, 16000, d.pitch_min_hz, d.pitch_max_hz, 160, d.yin_threshold)
    assert torch.isnan(track).float().mean() > 0.9


def test_silence_and_level_are_measured(tmp_path, settings):
    """A tone with known silences on either side, in RAVDESS layout at 48 kHz."""
    d, f = settings
    rate, lead, tone_s, tail = 48000, 0.6, 1.5, 0.4
    tone = 0.5 * np.sin(2 * np.pi * 200.0 * np.arange(int(tone_s * rate)) / rate)
    wave = np.concatenate([np.zeros(int(lead * rate)), tone, np.zeros(int(tail * rate))])
    (tmp_path / "Actor_01").mkdir()
    sf.write(tmp_path / "Actor_01" / "03-01-05-02-01-01-01.wav", wave, rate, subtype="PCM_16")
    table = build_table(tmp_path)
    analysis = describe.analyse(table, tmp_path, d, f, progress=False)
    row = analysis.utterances.iloc[0]
    frame_s = f.n_fft / f.sample_rate
    assert abs(row["leading_silence_s"] - lead) <= frame_s
    assert abs(row["trailing_silence_s"] - tail) <= frame_s
    assert abs(row["rms_dbfs"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.5
    assert abs(row["f0_median_hz"] - 200.0) < 2.0


def test_real_speech_pitch_by_gender(ravdess_dev, settings, tmp_path):
    """On real RAVDESS: actor 01 (male) speaks lower than actor 02 (female)."""
    d, f = settings
    rows = []
    for actor in (1, 2):
        for stem in (f"03-01-01-01-01-01-{actor:02d}", f"03-01-02-01-01-01-{actor:02d}"):
            rows.append({"path": f"Actor_{actor:02d}/{stem}.flac", "stem": stem,
                         "emotion_name": "neutral" if stem[6:8] == "01" else "calm",
                         "intensity_name": "normal", "statement": 1, "repetition": 1,
                         "actor": actor, "gender": "male" if actor == 1 else "female",
                         "duration_s": 0.0})
    analysis = describe.analyse(pd.DataFrame(rows), ravdess_dev, d, f, progress=False)
    f0 = analysis.utterances.groupby("actor")["f0_median_hz"].median()
    assert 70 < f0[1] < 170 < f0[2] < 320
