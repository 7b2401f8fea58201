"""external stage: every classifier and head cell of params.yaml (models/<model>-<subset>/, its fold
models averaged as predict does) on each labelled corpus of external.corpora, over the
classes the two share -> metrics/external/<corpus>/<model>-<subset>.json and
plots/external/<corpus>/<model>-<subset>.json (confusion records). With no corpora (the
default) both folders are left empty. Nothing is downloaded: the corpora are the user's.
"""

from speech_emotion import atomic, external, machine, params, stage
from speech_emotion.paths import EXTERNAL_METRICS, EXTERNAL_PLOTS, cell, model_dir


def main() -> None:
    p = params.load()
    corpora = p.external.corpora
    # whole or not at all; a corpus dropped from params.yaml leaves nothing behind
    with atomic.atomic_dir(EXTERNAL_METRICS) as metrics, atomic.atomic_dir(EXTERNAL_PLOTS) as plots:
        if not corpora:
            print("external: external.corpora is empty; nothing to score")
            return
        cells = [external.load_cell(cell(m, s), model_dir(m, s))
                 for m in p.cells.models + p.cells.heads for s in p.cells.subsets]
        for corpus_params in corpora:
            with external.open_corpus(corpus_params, progress=True) as corpus:
                print(f"external: {corpus.name}: {len(corpus.recordings)} recordings of "
                      f"{', '.join(corpus.classes)}")
                for scored, scores in external.score_corpus(
                        corpus, cells, p.evaluate.shifts, progress=True,
                        prior_correction=p.external.prior_correction):
                    name = f"{scored.name}.json"
                    atomic.write_json(metrics / corpus.name / name,
                                      {**scores.metrics, "machine": machine.describe()})
                    atomic.write_json(plots / corpus.name / name, scores.confusion)
                    m = scores.metrics
                    left = ", ".join(f"{k} {v}" for k, v in m["left_out"].items())
                    print(f"external: {corpus.name}: {scored.name}: UA {m['ua']:.4f} "
                          f"WA {m['wa']:.4f} macro-F1 {m['macro_f1']:.4f} on "
                          f"{m['n_utterances']} recordings of {len(m['shared_classes'])} "
                          f"shared classes" + (f"; left out: {left}" if left else "")
                          + (f"; prior-corrected UA {m['prior_corrected']['ua']:.4f}"
                             if "prior_corrected" in m else ""))


if __name__ == "__main__":
    stage.run(main)
