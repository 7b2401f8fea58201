"""represent@<variant>-<subset> stage: learn utterance representations on one intensity
subset, every fold in split.folds, from the fold's training actors only ->
models/<variant>-<subset>/ (fold<k>.csv latent tables aligned to data.csv, fold<k>.pt and
fold<k>_history.csv for the VAEs), plots/reconstructions/<variant>-<subset>.png.

    python stages/represent.py fhvae all
"""

from speech_emotion import atomic, labels, stage, store
from speech_emotion.figures import PNG_METADATA, plt
from speech_emotion.paths import DATA_CSV, FEATURES, RECONSTRUCTIONS, cell, model_dir
from speech_emotion.representation import reconstruction_figure, represent_cell, write_cell


def main() -> None:
    variant, subset, p = stage.cell_arguments(__doc__, "variant",
                                              threads=lambda p: p.represent.threads)
    name = cell(variant, subset)
    table = labels.read_table(DATA_CSV)
    feature_set = store.read_aligned(FEATURES, table, p.features)   # rows of data.csv
    features = feature_set.features

    result = represent_cell(variant, subset, table, features, p, feature_set.attrs)
    with atomic.atomic_dir(model_dir(variant, subset)) as out:
        write_cell(out, result)
    fig = reconstruction_figure(result, variant)
    with atomic.atomic_path(RECONSTRUCTIONS / f"{name}.png") as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata=PNG_METADATA)
    plt.close(fig)
    for fold, fold_result in zip(result.folds, result.results, strict=True):
        last = fold_result.history[-1] if fold_result.history else {}
        loss = f"final loss {last['loss']:.2f}" if last else "nothing to train"
        print(f"{name} fold {fold.number}: {len(fold_result.latents)} utterances encoded, {loss}")


if __name__ == "__main__":
    stage.run(main)
