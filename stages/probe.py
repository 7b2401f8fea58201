"""probe@<variant>-<subset> stage: linear probes of the representations in
models/<variant>-<subset>/ on each fold's test actors -> metrics/<variant>-<subset>.json
(emotion UA/WA/macro-F1 in the classifiers' schema, speaker-probe accuracy, every latent
group side by side), plots/latents/<variant>-<subset>-{projections,probes}.png.

    python stages/probe.py fhvae all
"""

from speech_emotion import atomic, labels, stage
from speech_emotion.figures import PNG_METADATA, plt
from speech_emotion.folds import from_split, subset_table
from speech_emotion.latents import group_columns, read_latents
from speech_emotion.paths import DATA_CSV, LATENT_PLOTS, cell, metrics_file, model_dir
from speech_emotion.probe import groups_figure, probe_cell, projection_figure


def main() -> None:
    variant, subset, p = stage.cell_arguments(__doc__, "variant")
    name = cell(variant, subset)
    table = subset_table(labels.read_table(DATA_CSV), subset)
    folds = from_split(table["actor"], p.split)
    latents = read_latents(model_dir(variant, subset), folds)

    result = probe_cell(latents, table, folds, subset, p.probe)
    atomic.write_json(metrics_file(variant, subset), result)

    primary = result["representation"]
    figures = {
        "projections": projection_figure(latents[folds[0].number],
                                         group_columns(latents[folds[0].number])[primary],
                                         table, folds[0], p.probe, f"{name} {primary}"),
        "probes": groups_figure(result, f"{name}: linear probes per latent group"),
    }
    for figure, fig in figures.items():
        with atomic.atomic_path(LATENT_PLOTS / f"{name}-{figure}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=90, metadata=PNG_METADATA)
        plt.close(fig)
    print(f"{name} ({primary}): emotion UA {result['ua']:.4f} WA {result['wa']:.4f} "
          f"macro-F1 {result['macro_f1']:.4f}; speaker accuracy {result['speaker_acc']} "
          f"(chance {result['speaker_chance']}) over {result['n_folds']} fold(s)")


if __name__ == "__main__":
    stage.run(main)
