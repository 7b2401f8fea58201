"""Where the pipeline reads and writes: every path of dvc.yaml, once, for the code.

Paths are relative to the repository root, the folder DVC runs every stage in. A cell of
a matrix stage is `<model>-<subset>` (`cnn-all`, `fhvae-strong`); its paths are built
from that key here and nowhere else. dvc.yaml spells the same paths for DVC.
"""

from __future__ import annotations

from pathlib import Path

RAW = Path("data/raw/ravdess")              # download: Actor_NN/03-01-*.wav|flac
DOWNLOADS = Path("data/downloads")          # the verified Zenodo archive (git-ignored, no DVC out)
DATA_CSV = Path("data/interim/data.csv")    # labels
FEATURES = Path("data/processed/features.h5")
ENCODED = Path("data/processed/encoded.h5")  # encode: the pretrained encoder's output
FIGURES = Path("reports/figures")           # describe
SUMMARY = Path("reports/summary.json")
RESULTS = Path("reports/results.md")        # report
MODELS = Path("models")
METRICS = Path("metrics")
TRAIN_LOGS = Path("logs/train")
CONFUSION = Path("plots/confusion")
PREDICTIONS = Path("data/predictions")      # evaluate: <cell>.csv, class probabilities
RECONSTRUCTIONS = Path("plots/reconstructions")
LATENT_PLOTS = Path("plots/latents")
EXTERNAL_METRICS = METRICS / "external"     # external: <corpus>/<model>-<subset>.json
EXTERNAL_PLOTS = Path("plots/external")     # external: <corpus>/<model>-<subset>.json (confusion)


def intensity_csv(intensity: str) -> Path:
    """split: `data/interim/data_strong.csv`, `data/interim/data_normal.csv`."""
    return DATA_CSV.with_name(f"data_{intensity}.csv")


def cell(model: str, subset: str) -> str:
    """The key of a matrix cell: `cnn-all`, `cnn_transformer-strong`, `fhvae-normal`."""
    return f"{model}-{subset}"


def fused(head: str, model: str) -> str:
    """The model name of a fusion cell: `whisper_asp+cnn` (its cell `whisper_asp+cnn-all`)."""
    return f"{head}+{model}"


def predictions_file(model: str, subset: str) -> Path:
    return PREDICTIONS / f"{cell(model, subset)}.csv"


def model_dir(model: str, subset: str) -> Path:
    return MODELS / cell(model, subset)


def metrics_file(model: str, subset: str) -> Path:
    return METRICS / f"{cell(model, subset)}.json"


def confusion_file(model: str, subset: str) -> Path:
    return CONFUSION / f"{cell(model, subset)}.json"
