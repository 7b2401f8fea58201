"""report stage: metrics/*.json -> reports/results.md (the results table for the README)."""

from speech_emotion import atomic, report
from speech_emotion.paths import METRICS, RESULTS


def main() -> None:
    rows = report.read_rows(METRICS)
    text = "# Results\n\n" + report.markdown(rows)
    atomic.write_text(RESULTS, text)
    print(f"{RESULTS}: {len(rows)} cells")


if __name__ == "__main__":
    main()
