"""report stage: metrics/<cell>.json of every cell of params.yaml -> reports/results.md
(the results table for the README), with a column per external corpus scored
(metrics/external/<corpus>/<cell>.json). Metrics files of cells no longer in params.yaml are
left out of the table."""

from speech_emotion import atomic, params, report, stage
from speech_emotion.paths import EXTERNAL_METRICS, METRICS, RESULTS, cell, fused


def main() -> None:
    p = params.load()
    classifiers = p.cells.models + p.cells.heads + [fused(*f) for f in p.cells.fusions()]
    cells = ([cell(m, s) for m in classifiers for s in p.cells.subsets]
             + [cell(v, s) for v in p.cells.variants for s in p.cells.variant_subsets])
    rows = report.read_rows(METRICS, cells)
    text = "# Results\n\n" + report.markdown(rows, report.read_external(EXTERNAL_METRICS, cells))
    atomic.write_text(RESULTS, text)
    stale = report.stale_files(METRICS, cells)
    print(f"{RESULTS}: {len(rows)} cells" + (f"; left out, not cells of params.yaml: "
                                            f"{', '.join(str(s) for s in stale)}" if stale else ""))


if __name__ == "__main__":
    stage.run(main)
