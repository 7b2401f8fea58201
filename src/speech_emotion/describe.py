"""The descriptive analysis of the corpus: the counts, durations, silences, prosody and
spectra a researcher looks at before training anything.

`analyse` makes one pass over the audio (one utterance at a time, with a progress bar)
and keeps a few numbers per utterance plus running sums for the mean log-mel spectrograms;
`summarise` turns them into the `summary.json` dict, and `draw` into the figures listed
in `FIGURES`. `run` does all three.

Pitch is estimated with YIN (de Cheveigné & Kawahara 2002), vectorised over the frames of
an utterance with torch: the difference function comes from an FFT cross-correlation and
cumulative energies, so a 4 s utterance costs a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchaudio
from matplotlib.patches import Patch
from tqdm import tqdm

from . import features
from .figures import PNG_METADATA, plt
from .params import DescribeParams, FeatureParams
from .ravdess import EMOTION_NAMES, GENDERS, INTENSITIES, actor_dir

INTENSITY_NAMES = tuple(INTENSITIES[code] for code in sorted(INTENSITIES))
REQUIRED_COLUMNS = ("path", "stem", "emotion_name", "intensity_name", "statement",
                    "repetition", "actor", "gender", "duration_s")

# Okabe & Ito (2008), a palette that colour-blind readers can tell apart.
OKABE_ITO = {"orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "purple": "#CC79A7", "black": "#000000"}
INTENSITY_COLOURS = {"normal": OKABE_ITO["sky_blue"], "strong": OKABE_ITO["vermillion"]}
GENDER_COLOURS = {"male": OKABE_ITO["blue"], "female": OKABE_ITO["orange"]}
COLOURMAP = "magma"  # perceptually uniform, readable in grey and by colour-blind readers

# Every figure the stage draws: file name -> (width, height) in inches. Pixel size is
# inches x describe.dpi; figures use a fixed layout (no tight bbox), so that is exact.
FIGURES: dict[str, tuple[float, float]] = {
    "counts.png": (12.0, 4.5),
    "durations.png": (12.0, 4.5),
    "silence.png": (12.0, 4.5),
    "pitch.png": (12.0, 4.5),
    "energy.png": (12.0, 4.5),
    "mean_logmel.png": (12.0, 6.0),
    "examples.png": (12.0, 9.0),
}


class DescribeError(ValueError):
    """The table cannot be described; the message says why."""


def figure_pixels(name: str, dpi: int) -> tuple[int, int]:
    """The (width, height) in pixels of the figure `name` at `dpi`."""
    width, height = FIGURES[name]
    return round(width * dpi), round(height * dpi)


# ---------------------------------------------------------------- the table
def check_table(table: pd.DataFrame, source: str = "data.csv") -> pd.DataFrame:
    """The table sorted by path, or DescribeError naming what is wrong with it."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DescribeError(f"{source}: missing column(s) {', '.join(missing)}")
    if len(table) == 0:
        raise DescribeError(f"{source}: the table has no utterances; nothing to describe "
                            "(did the labels stage find any audio?)")
    return table.sort_values("path", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- signal measures
def frame_rms_db(wave: torch.Tensor, frame: int, hop: int) -> torch.Tensor:
    """`(samples,)` -> `(frames,)` RMS level of each frame in dBFS (floor -120 dB)."""
    if wave.numel() < frame:
        wave = torch.nn.functional.pad(wave, (0, frame - wave.numel()))
    frames = wave.unfold(0, frame, hop)                       # (frames, frame)
    rms = frames.pow(2).mean(dim=1).sqrt()
    return 20 * torch.log10(rms.clamp_min(1e-6))


def yin(wave: torch.Tensor, sample_rate: int, f_min: float, f_max: float, hop: int,
        threshold: float) -> torch.Tensor:
    """YIN pitch track: `(samples,)` -> `(frames,)` F0 in Hz, NaN where unvoiced.

    The integration window is two periods of `f_min`; frame t starts at sample t * hop.
    A frame is voiced when its cumulative-mean-normalised difference dips below
    `threshold` at some lag in [sample_rate / f_max, sample_rate / f_min].
    """
    tau_min = max(2, int(sample_rate / f_max))
    tau_max = int(math.ceil(sample_rate / f_min))
    window = 2 * tau_max
    span = window + tau_max + 1
    x = wave.to(torch.float64)
    if x.numel() < span:
        x = torch.nn.functional.pad(x, (0, span - x.numel()))
    frames = x.unfold(0, span, hop)                           # (T, span)
    n_fft = 1 << (span + window - 1).bit_length()
    # r[t, tau] = sum_{j < window} x[j] x[j + tau]
    spec_head = torch.fft.rfft(frames[:, :window], n_fft)
    spec_all = torch.fft.rfft(frames, n_fft)
    corr = torch.fft.irfft(spec_head.conj() * spec_all, n_fft)[:, : tau_max + 1]  # (T, tau_max+1)
    # e[t, tau] = sum_{j < window} x[j + tau]^2
    cum = torch.nn.functional.pad(frames.pow(2).cumsum(dim=1), (1, 0))
    energy = cum[:, window: window + tau_max + 1] - cum[:, : tau_max + 1]           # (T, tau_max+1)
    diff = (energy[:, :1] + energy - 2 * corr).clamp_min(0)                         # d(tau)
    lags = torch.arange(tau_max + 1, dtype=torch.float64)
    running = diff[:, 1:].cumsum(dim=1)
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / running.clamp_min(1e-12)
    # first lag under the threshold that is a local minimum
    inner = cmnd[:, tau_min: tau_max]                           # lags tau_min..tau_max-1
    is_min = inner <= cmnd[:, tau_min + 1: tau_max + 1]
    candidate = (inner < threshold) & is_min
    voiced = candidate.any(dim=1)
    first = candidate.to(torch.int8).argmax(dim=1) + tau_min                        # (T,)
    # parabolic interpolation around the chosen lag
    lag = first.clamp(1, tau_max - 1)
    rows = torch.arange(cmnd.shape[0])
    left, mid, right = cmnd[rows, lag - 1], cmnd[rows, lag], cmnd[rows, lag + 1]
    denom = left - 2 * mid + right
    shift = torch.where(denom.abs() > 1e-12, 0.5 * (left - right) / denom, torch.zeros_like(denom))
    period = lag.to(torch.float64) + shift.clamp(-1, 1)
    f0 = sample_rate / period
    return torch.where(voiced, f0, torch.full_like(f0, float("nan"))).to(torch.float32)


# ---------------------------------------------------------------- the audio pass
@dataclass
class Analysis:
    """What the audio pass keeps: one row per utterance, and mean log-mels per emotion."""

    utterances: pd.DataFrame             # the table plus the columns of MEASURES
    mean_logmel: dict[str, np.ndarray]   # emotion -> (n_mels, T) mean log-mel (dB) of the clips
    logmel_count: dict[str, int]         # emotion -> utterances in that mean
    examples: dict[str, dict]            # emotion -> {"stem", "wave", "logmel"}, example actor
    mel_hz: np.ndarray                   # (n_mels,) centre frequency of each mel band (Hz)
    features: FeatureParams              # how the audio was read, trimmed and transformed


MEASURES = ("leading_silence_s", "trailing_silence_s", "active_s", "rms_dbfs",
            "f0_median_hz", "voiced_fraction")


def analyse(table: pd.DataFrame, raw_root: str | Path, describe: DescribeParams,
            params: FeatureParams, progress: bool = True) -> Analysis:
    """One pass over the audio of `table` (paths relative to `raw_root`).

    Each utterance is read as the features stage reads it (`features.load_wave`: mono, at
    `features.sample_rate`). Silence is what the features stage trims
    (`features.nonsilent_span` with `features.trim_db`). RMS level is over the speech
    between the leading and trailing silence; F0 is the median YIN estimate over its voiced
    frames (frames quieter than `trim_db` below the loudest frame count as unvoiced). The
    mean log-mel per emotion is the mean of the model's own input: `features.fix_length`
    clips through the log-mel `features.Extractor`.
    """
    table = check_table(table)
    raw_root = Path(raw_root)
    extractor = features.Extractor(dataclasses.replace(params, kind="logmel")).eval()
    sums = {e: np.zeros((params.n_mels, features.n_frames(params))) for e in EMOTION_NAMES}
    counts = dict.fromkeys(EMOTION_NAMES, 0)
    examples: dict[str, dict] = {}
    example_stems = _example_stems(table, describe)

    rows = []
    bar = tqdm(table.itertuples(index=False), total=len(table), desc="describe: audio pass",
               unit="utt", disable=not progress)
    # One utterance at a time is too small to share out: one thread, so that a busy
    # machine's other jobs do not stall every operation (the setting is restored after).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for row in bar:
            rows.append(_measure(row, raw_root, describe, params, extractor, sums, counts,
                                 examples, example_stems))
    finally:
        torch.set_num_threads(threads)

    measured = pd.DataFrame(rows, columns=list(MEASURES))
    means = {e: sums[e] / counts[e] if counts[e] else np.full_like(sums[e], np.nan)
             for e in EMOTION_NAMES}
    return Analysis(pd.concat([table, measured], axis=1), means, counts, examples,
                    _mel_centres(extractor), params)


@torch.inference_mode()
def _measure(row, raw_root: Path, describe: DescribeParams, params: FeatureParams,
             extractor, sums: dict, counts: dict, examples: dict, example_stems: set) -> dict:
    """The measures of one utterance; adds its clip's log-mel to the emotion's sum."""
    rate, hop, frame = params.sample_rate, params.hop_length, params.win_length
    wave = features.load_wave(raw_root / row.path, rate)                    # (samples,)
    start, end = features.nonsilent_span(wave, params.trim_db, params.n_fft, hop)
    speech = wave[start:end]                                              # (speech samples,)
    f0 = yin(speech, rate, describe.pitch_min_hz, describe.pitch_max_hz, hop,
             describe.yin_threshold)                                      # (frames,)
    level = frame_rms_db(speech, frame, hop)[: f0.numel()]                # (<= frames,)
    loud = torch.nn.functional.pad(level >= level.max() - params.trim_db,
                                   (0, f0.numel() - level.numel()))
    voiced = ~torch.isnan(f0) & loud
    rms = float(speech.square().mean().sqrt().clamp_min(1e-6))
    clip = features.fix_length(wave, params)                              # (n_samples,)
    sums[row.emotion_name] += extractor(clip[None])[0].double().numpy()   # (n_mels, T)
    counts[row.emotion_name] += 1
    if row.stem in example_stems:
        examples[row.emotion_name] = {"stem": row.stem, "wave": wave.numpy(),
                                      "logmel": extractor(wave[None])[0].numpy()}
    return {
        "leading_silence_s": start / rate,
        "trailing_silence_s": (wave.numel() - end) / rate,
        "active_s": speech.numel() / rate,
        "rms_dbfs": 20 * math.log10(rms),
        "f0_median_hz": float(f0[voiced].median()) if voiced.any() else float("nan"),
        "voiced_fraction": float(voiced.float().mean()),
    }


def _example_stems(table: pd.DataFrame, describe: DescribeParams) -> set[str]:
    """Stems of the example utterances: the example actor, one per emotion, at the chosen
    intensity where it exists (neutral is normal only), lowest statement and repetition."""
    chosen = table[table["actor"] == describe.example_actor]
    stems = set()
    for _, group in chosen.groupby("emotion_name", sort=True):
        preferred = group[group["intensity_name"] == describe.example_intensity]
        group = preferred if len(preferred) else group
        stems.add(group.sort_values(["statement", "repetition", "path"]).iloc[0]["stem"])
    return stems


def _mel_centres(extractor: features.Extractor) -> np.ndarray:
    """Centre frequency (Hz) of each mel band: the peak of its triangular filter."""
    mel = next(m for m in extractor.modules() if isinstance(m, torchaudio.transforms.MelScale))
    all_freqs = torch.linspace(0, mel.sample_rate // 2, mel.fb.shape[0])   # (n_stft,)
    return all_freqs[mel.fb.argmax(dim=0)].numpy()                         # (n_mels,)


# ---------------------------------------------------------------- summary.json
def _stats(values: pd.Series) -> dict[str, float | int]:
    values = values.dropna()
    if values.empty:
        return {"n": 0}
    return {"n": int(values.size), "min": _round(values.min()), "median": _round(values.median()),
            "mean": _round(values.mean()), "max": _round(values.max())}


def _round(value: float) -> float:
    return round(float(value), 4)


def count_table(table: pd.DataFrame) -> dict:
    """Utterance counts: emotion x intensity (zeros included, so neutral/strong shows as 0),
    per actor, per gender and gender x intensity."""
    grid = pd.crosstab(pd.Categorical(table["emotion_name"], EMOTION_NAMES),
                       pd.Categorical(table["intensity_name"], INTENSITY_NAMES), dropna=False)
    by_actor = table.groupby("actor").size()
    by_gender = table.groupby("gender").size()
    gender_intensity = pd.crosstab(pd.Categorical(table["gender"], GENDERS),
                                   pd.Categorical(table["intensity_name"], INTENSITY_NAMES),
                                   dropna=False)
    return {
        "emotion_intensity": {e: {i: int(grid.loc[e, i]) for i in INTENSITY_NAMES}
                              for e in EMOTION_NAMES},
        "emotion": {e: int((table["emotion_name"] == e).sum()) for e in EMOTION_NAMES},
        "intensity": {i: int((table["intensity_name"] == i).sum()) for i in INTENSITY_NAMES},
        "actor": {actor_dir(int(a)): int(n) for a, n in by_actor.items()},
        "gender": {g: int(by_gender.get(g, 0)) for g in GENDERS},
        "gender_intensity": {g: {i: int(gender_intensity.loc[g, i]) for i in INTENSITY_NAMES}
                             for g in GENDERS},
    }


def summarise(analysis: Analysis) -> dict:
    """The `summary.json` dict (numbers only, so DVC shows each as a metric): counts, then
    ranges of every measure and its median per gender, emotion and intensity."""
    u = analysis.utterances

    def by_emotion_intensity(column: str, rows: pd.DataFrame) -> dict:
        out = {}
        for e in EMOTION_NAMES:
            cells = {}
            for i in INTENSITY_NAMES:
                chosen = (rows["emotion_name"] == e) & (rows["intensity_name"] == i)
                values = rows.loc[chosen, column]
                values = values.dropna()
                if len(values):
                    cells[i] = _round(values.median())
            out[e] = cells
        return out

    return {
        "n_utterances": int(len(u)),
        "n_actors": int(u["actor"].nunique()),
        "counts": count_table(u),
        "duration_s": {"all": _stats(u["duration_s"]),
                       "by_emotion": {e: _stats(u.loc[u["emotion_name"] == e, "duration_s"])
                                      for e in EMOTION_NAMES}},
        "silence_s": {"leading": _stats(u["leading_silence_s"]),
                      "trailing": _stats(u["trailing_silence_s"]),
                      "speech": _stats(u["active_s"])},
        # pitch: per utterance the YIN median F0 of its voiced frames; per cell the median
        "pitch_hz": {
            "unvoiced_utterances": int(u["f0_median_hz"].isna().sum()),
            "voiced_fraction": _stats(u["voiced_fraction"]),
            **{g: by_emotion_intensity("f0_median_hz", u[u["gender"] == g]) for g in GENDERS},
        },
        # level: RMS of the speech between leading and trailing silence; per cell the median
        "rms_dbfs": {
            "all": _stats(u["rms_dbfs"]),
            **{g: by_emotion_intensity("rms_dbfs", u[u["gender"] == g]) for g in GENDERS},
        },
    }


# ---------------------------------------------------------------- figures
STYLE = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11,
         "xtick.labelsize": 11, "ytick.labelsize": 11, "figure.titlesize": 14,
         "axes.spines.top": False, "axes.spines.right": False}


def _legend_patches(colours: dict[str, str]) -> list:
    return [Patch(facecolor=c, edgecolor="black", label=name)
            for name, c in colours.items()]


def _boxes(ax, rows: pd.DataFrame, column: str, ylabel: str, title: str) -> None:
    """Box plots of `column` per emotion, side by side per intensity; a missing cell
    (neutral has no strong intensity) is marked "none"."""
    width = 0.36
    for e_index, emotion in enumerate(EMOTION_NAMES):
        for i_index, intensity in enumerate(INTENSITY_NAMES):
            position = e_index + (i_index - 0.5) * (width + 0.04)
            values = rows.loc[(rows["emotion_name"] == emotion)
                              & (rows["intensity_name"] == intensity), column].dropna()
            if values.empty:
                ax.text(position, 0.02, "none", transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", rotation=90, fontsize=9, color="0.4")
                continue
            ax.boxplot([values.to_numpy()], positions=[position], widths=width,
                       patch_artist=True, manage_ticks=False,
                       boxprops={"facecolor": INTENSITY_COLOURS[intensity], "edgecolor": "black"},
                       medianprops={"color": "black", "linewidth": 1.5},
                       flierprops={"marker": ".", "markersize": 3, "markeredgecolor": "0.3"})
    ax.set_xticks(range(len(EMOTION_NAMES)), EMOTION_NAMES, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(EMOTION_NAMES) - 0.4)
    ax.set_xlabel("emotion")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)


def _intensity_legend(fig) -> None:
    fig.legend(handles=_legend_patches({f"{i} intensity": c for i, c in INTENSITY_COLOURS.items()}),
               loc="outside lower center", ncols=2, frameon=False)


def figure_counts(analysis: Analysis):
    u = analysis.utterances
    counts = count_table(u)
    fig, axes = plt.subplots(1, 3, figsize=FIGURES["counts.png"], layout="constrained",
                             gridspec_kw={"width_ratios": [1.0, 2.4, 1.1]})
    grid = np.array([[counts["emotion_intensity"][e][i] for i in INTENSITY_NAMES]
                     for e in EMOTION_NAMES])
    ax = axes[0]
    ax.imshow(grid, cmap="cividis", aspect="auto", vmin=0, vmax=max(1, grid.max()))
    for (r, c), n in np.ndenumerate(grid):
        ax.text(c, r, str(n), ha="center", va="center",
                color="black" if n > grid.max() / 2 else "white", fontsize=11)
    ax.set_xticks(range(len(INTENSITY_NAMES)), INTENSITY_NAMES)
    ax.set_yticks(range(len(EMOTION_NAMES)), EMOTION_NAMES)
    ax.set_xlabel("intensity")
    ax.set_title("Utterances per emotion\nand intensity")
    ax.spines[:].set_visible(False)

    ax = axes[1]
    actors = sorted(int(a) for a in u["actor"].unique())
    per_actor = u.groupby("actor").size()
    genders = u.groupby("actor")["gender"].first()
    ax.bar(range(len(actors)), [per_actor[a] for a in actors],
           color=[GENDER_COLOURS[genders[a]] for a in actors], edgecolor="black")
    ax.set_xticks(range(len(actors)), [f"{a:02d}" for a in actors],
                  rotation=90 if len(actors) > 12 else 0)
    ax.set_xlabel("actor")
    ax.set_ylabel("utterances")
    ax.set_title("Utterances per actor")
    ax.legend(handles=_legend_patches(GENDER_COLOURS), loc="lower right", framealpha=0.9)

    ax = axes[2]
    for i_index, intensity in enumerate(INTENSITY_NAMES):
        heights = [counts["gender_intensity"][g][intensity] for g in GENDERS]
        ax.bar(np.arange(len(GENDERS)) + (i_index - 0.5) * 0.4, heights, width=0.4,
               color=INTENSITY_COLOURS[intensity], edgecolor="black", label=intensity)
    ax.set_xticks(range(len(GENDERS)), GENDERS)
    ax.set_xlabel("gender")
    ax.set_ylabel("utterances")
    ax.set_title("Per gender and intensity")
    ax.legend(title="intensity", loc="lower right", framealpha=0.9)
    fig.suptitle(f"RAVDESS speech: {len(u)} utterances, {len(actors)} actors")
    return fig


def figure_durations(analysis: Analysis):
    u = analysis.utterances
    fig, axes = plt.subplots(1, 2, figsize=FIGURES["durations.png"], layout="constrained",
                             gridspec_kw={"width_ratios": [1.0, 1.6]})
    ax = axes[0]
    low = math.floor(min(u["active_s"].min(), u["duration_s"].min()) * 10) / 10
    high = math.ceil(u["duration_s"].max() * 10) / 10 + 0.1
    bins = np.arange(low, high + 0.1, 0.1)
    ax.hist(u["duration_s"], bins=bins, color=OKABE_ITO["blue"], alpha=0.75,
            label="whole recording")
    ax.hist(u["active_s"], bins=bins, color=OKABE_ITO["orange"], alpha=0.75,
            label="speech (silence cut)")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("utterances")
    ax.set_title("Duration, all utterances")
    ax.legend(loc="upper right", framealpha=0.9)
    _boxes(axes[1], u, "duration_s", "duration (s)", "Recording duration per emotion")
    _intensity_legend(fig)
    fig.suptitle("Utterance durations")
    return fig


def figure_silence(analysis: Analysis):
    u = analysis.utterances
    fig, axes = plt.subplots(1, 2, figsize=FIGURES["silence.png"], layout="constrained",
                             sharey=True)
    _boxes(axes[0], u, "leading_silence_s", "silence (s)", "Leading silence")
    _boxes(axes[1], u, "trailing_silence_s", "silence (s)", "Trailing silence")
    _intensity_legend(fig)
    fp = analysis.features
    fig.suptitle(f"Silence before and after speech: what the features stage trims "
                 f"({1000 * fp.n_fft / fp.sample_rate:g} ms frames > {fp.trim_db:g} dB "
                 "below the loudest)")
    return fig


def _by_gender(analysis: Analysis, name: str, column: str, ylabel: str, title: str):
    u = analysis.utterances
    fig, axes = plt.subplots(1, 2, figsize=FIGURES[name], layout="constrained")
    for ax, gender in zip(axes, GENDERS, strict=True):
        rows = u[u["gender"] == gender]
        _boxes(ax, rows, column, ylabel, f"{gender} actors ({rows['actor'].nunique()})")
    _intensity_legend(fig)
    fig.suptitle(title)
    return fig


def figure_pitch(analysis: Analysis):
    return _by_gender(analysis, "pitch.png", "f0_median_hz", "median F0 (Hz)",
                      "Pitch per emotion and intensity (YIN, median over voiced frames "
                      "of each utterance)")


def figure_energy(analysis: Analysis):
    return _by_gender(analysis, "energy.png", "rms_dbfs", "RMS level (dBFS)",
                      "Loudness per emotion and intensity (RMS of the speech, silence cut)")


def _mel_axis(ax, mel_hz: np.ndarray) -> None:
    """Label a mel-band axis in Hz."""
    ticks = [hz for hz in (100, 250, 500, 1000, 2000, 4000, 8000)
             if mel_hz[0] <= hz <= mel_hz[-1]]
    ax.set_yticks(np.interp(ticks, mel_hz, np.arange(mel_hz.size)),
                  [f"{hz / 1000:g}k" if hz >= 1000 else str(hz) for hz in ticks])
    ax.set_ylabel("frequency (Hz)")


def figure_mean_logmel(analysis: Analysis):
    fig, axes = plt.subplots(2, 4, figsize=FIGURES["mean_logmel.png"], layout="constrained",
                             sharex=True, sharey=True)
    finite = [m[np.isfinite(m)] for m in analysis.mean_logmel.values()]
    finite = np.concatenate(finite) if finite else np.zeros(0)
    vmin, vmax = (np.percentile(finite, [1, 99.9]) if finite.size else (-80.0, 0.0))
    fp = analysis.features
    clip_s = features.n_samples(fp) / fp.sample_rate
    image = None
    for ax, emotion in zip(axes.flat, EMOTION_NAMES, strict=True):
        mean = analysis.mean_logmel[emotion]
        image = ax.imshow(mean, origin="lower", aspect="auto", cmap=COLOURMAP, vmin=vmin,
                          vmax=vmax, interpolation="nearest",
                          extent=(0, clip_s, -0.5, mean.shape[0] - 0.5))
        ax.set_title(f"{emotion} (n={analysis.logmel_count[emotion]})")
    for ax in axes[-1]:
        ax.set_xlabel("time in clip (s)")
    for ax in axes[:, 0]:
        _mel_axis(ax, analysis.mel_hz)
    fig.colorbar(image, ax=axes, label="mean log-mel power (dB)", shrink=0.9)
    policy = ("silence trimmed, centre-cropped or padded" if fp.clip == "trim"
              else f"from {fp.offset_s:g} s")
    fig.suptitle("Mean log-mel spectrogram per emotion, all actors and intensities\n"
                 f"(the model input: {clip_s:g} s clips, {policy})")
    return fig


def figure_examples(analysis: Analysis, describe: DescribeParams):
    fig, axes = plt.subplots(4, 4, figsize=FIGURES["examples.png"], layout="constrained",
                             gridspec_kw={"height_ratios": [1, 1.6, 1, 1.6]})
    rate = analysis.features.sample_rate
    for k, emotion in enumerate(EMOTION_NAMES):
        wave_ax, spec_ax = axes[2 * (k // 4), k % 4], axes[2 * (k // 4) + 1, k % 4]
        example = analysis.examples.get(emotion)
        if example is None:
            wave_ax.set_title(f"{emotion}: no utterance")
            wave_ax.axis("off")
            spec_ax.axis("off")
            continue
        wave = example["wave"]
        wave_ax.plot(np.arange(wave.size) / rate, wave, color=OKABE_ITO["blue"], linewidth=0.4)
        wave_ax.set_xlim(0, wave.size / rate)
        wave_ax.set_title(f"{emotion}\n{example['stem']}", fontsize=11)
        wave_ax.set_ylabel("amplitude")
        wave_ax.tick_params(labelbottom=False)
        logmel = example["logmel"]                      # floored at top_db below its peak
        spec_ax.imshow(logmel, origin="lower", aspect="auto", cmap=COLOURMAP,
                       interpolation="nearest",
                       extent=(0, wave.size / rate, -0.5, logmel.shape[0] - 0.5))
        spec_ax.set_xlabel("time (s)")
        _mel_axis(spec_ax, analysis.mel_hz)
    fig.suptitle(f"Actor {describe.example_actor:02d}, one utterance per emotion "
                 f"({describe.example_intensity} intensity; neutral: normal only): "
                 f"waveform and log-mel ({analysis.features.top_db:g} dB range)")
    return fig


def draw(analysis: Analysis, describe: DescribeParams, out_dir: str | Path) -> list[Path]:
    """Write every figure of `FIGURES` into `out_dir` as PNG; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable] = {
        "counts.png": figure_counts,
        "durations.png": figure_durations,
        "silence.png": figure_silence,
        "pitch.png": figure_pitch,
        "energy.png": figure_energy,
        "mean_logmel.png": figure_mean_logmel,
        "examples.png": lambda a: figure_examples(a, describe),
    }
    assert set(makers) == set(FIGURES), "every declared figure has a maker"
    written = []
    with plt.rc_context(STYLE):
        for name in FIGURES:
            fig = makers[name](analysis)
            try:
                fig.savefig(out_dir / name, dpi=describe.dpi, metadata=PNG_METADATA)
            finally:
                plt.close(fig)
            written.append(out_dir / name)
    return written


def run(table: pd.DataFrame, raw_root: str | Path, describe: DescribeParams,
        features: FeatureParams, figures_dir: str | Path, progress: bool = True) -> dict:
    """The whole analysis: audio pass, figures into `figures_dir`; returns the summary."""
    analysis = analyse(table, raw_root, describe, features, progress=progress)
    draw(analysis, describe, figures_dir)
    return summarise(analysis)
