"""represent@<variant>-<subset> stage: learn utterance representations on one intensity
subset, every fold in split.folds, from the fold's training actors only ->
models/<variant>-<subset>/ (fold<k>.csv latent tables aligned to data.csv, fold<k>.pt and
fold<k>_history.csv for the VAEs), plots/reconstructions/<variant>-<subset>.png.

    python stages/represent.py fhvae all
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from speech_emotion import atomic, labels, params, store
from speech_emotion.probe import PNG_METADATA
from speech_emotion.representation import reconstruction_figure, represent_cell, write_cell

DATA = Path("data/interim/data.csv")
FEATURES = Path("data/processed/features.h5")
MODELS = Path("models")
RECONSTRUCTIONS = Path("plots/reconstructions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("variant")
    ap.add_argument("subset")
    args = ap.parse_args()
    cell = f"{args.variant}-{args.subset}"
    p = params.load()
    if p.represent.threads:
        torch.set_num_threads(p.represent.threads)
    table = labels.read_table(DATA)
    feature_set = store.read(FEATURES)
    store.check_params(feature_set.attrs, p.features)
    features = feature_set.features[feature_set.rows(table["path"])]   # rows of data.csv

    result = represent_cell(args.variant, args.subset, table, features, p, feature_set.attrs)
    with atomic.atomic_dir(MODELS / cell) as model_dir:
        write_cell(model_dir, result)
    fig = reconstruction_figure(result, args.variant)
    with atomic.atomic_path(RECONSTRUCTIONS / f"{cell}.png") as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata=PNG_METADATA)
    plt.close(fig)
    for fold, fold_result in zip(result.folds, result.results):
        last = fold_result.history[-1] if fold_result.history else {}
        loss = f"final loss {last['loss']:.2f}" if last else "nothing to train"
        print(f"{cell} fold {fold.number}: {len(fold_result.latents)} utterances encoded, {loss}")


if __name__ == "__main__":
    main()
