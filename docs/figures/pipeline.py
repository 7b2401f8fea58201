"""Draw the pipeline's stage graph into docs/figures/pipeline.png (the README's figure).

    python docs/figures/pipeline.py

The nodes and edges are written by hand from dvc.yaml, so redraw after changing the stages
(`dvc dag` prints DVC's own view to compare with). A matrix stage is one box for all its
cells. Only the direct edges are drawn: an edge that follows from two others (download ->
describe through labels, labels -> train through features, ...) is left out.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_name("pipeline.png")

# name: (x, y, label, main output)
NODES = {
    "download": (1.5, 5.0, "download", "data/raw/ravdess"),
    "labels": (1.5, 4.0, "labels", "data/interim/data.csv"),
    "split": (0.0, 3.0, "split", "data_{strong,normal}.csv"),
    "features": (1.0, 3.0, "features", "data/processed/features.h5"),
    "encode": (2.0, 3.0, "encode (Whisper)", "data/processed/encoded.h5"),
    "describe": (3.0, 3.0, "describe", "reports/figures, summary.json"),
    "train": (0.5, 2.0, "train@<model>-<subset>", "models/<model>-<subset>"),
    "represent": (1.5, 2.0, "represent@<variant>-<subset>", "models/<variant>-<subset>"),
    "train_head": (2.5, 2.0, "train_head@<head>-<subset>", "models/<head>-<subset>"),
    "evaluate": (0.5, 1.0, "evaluate@<model>-<subset>", "metrics/, plots/confusion/"),
    "probe": (1.5, 1.0, "probe@<variant>-<subset>", "metrics/, plots/latents/"),
    "evaluate_head": (2.5, 1.0, "evaluate_head@<head>-<subset>", "metrics/, plots/confusion/"),
    "external": (3.5, 1.0, "external", "metrics/external/"),
    "fuse": (0.9, 0.0, "fuse@<head>-<model>-<subset>", "metrics/, plots/confusion/"),
    "report": (1.5, -1.0, "report", "reports/results.md"),
}
EDGES = [
    ("download", "labels"),
    ("labels", "split"),
    ("labels", "features"),
    ("labels", "encode"),
    ("labels", "describe"),
    ("features", "train"),
    ("features", "represent"),
    ("encode", "train_head"),
    ("train", "evaluate"),
    ("represent", "probe"),
    ("train_head", "evaluate_head"),
    ("train_head", "external"),
    ("evaluate", "fuse"),
    ("evaluate_head", "fuse"),
    ("fuse", "report"),
    ("probe", "report"),
    ("external", "report"),
]
MATRIX = {"train", "represent", "evaluate", "probe", "train_head",
          "evaluate_head", "fuse"}                               # one box stands for many cells
X_STEP, Y_STEP = 2.85, 0.95                            # inches between box centres
BOX_W, BOX_H = 2.55, 0.6


def centre(name: str) -> tuple[float, float]:
    x, y, _, _ = NODES[name]
    return x * X_STEP, y * Y_STEP


def main() -> None:
    xs = [centre(n)[0] for n in NODES]
    ys = [centre(n)[1] for n in NODES]
    x_lim = (min(xs) - BOX_W / 2 - 0.05, max(xs) + BOX_W / 2 + 0.05)
    y_lim = (min(ys) - BOX_H / 2 - 0.05, max(ys) + BOX_H / 2 + 0.05)
    # one data unit is one inch, so the font sizes (points) fit the boxes (inches)
    fig = plt.figure(figsize=(x_lim[1] - x_lim[0], y_lim[1] - y_lim[0]))
    ax = fig.add_axes((0, 0, 1, 1))
    for name, (_, _, label, output) in NODES.items():
        cx, cy = centre(name)
        ax.add_patch(FancyBboxPatch(
            (cx - BOX_W / 2, cy - BOX_H / 2), BOX_W, BOX_H,
            boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1.0,
            edgecolor="#34495e", facecolor="#d6eaf8" if name in MATRIX else "#f2f3f4"))
        ax.text(cx, cy + 0.11, label, ha="center", va="center", fontsize=8.5,
                fontweight="bold", color="#1b2631")
        ax.text(cx, cy - 0.14, output, ha="center", va="center", fontsize=7,
                family="monospace", color="#34495e")
    for src, dst in EDGES:
        (x0, y0), (x1, y1) = centre(src), centre(dst)
        start, end = (x0, y0 - BOX_H / 2), (x1, y1 + BOX_H / 2)   # bottom edge to top edge
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "-|>", "color": "#566573", "lw": 1.0,
                                "shrinkA": 2, "shrinkB": 2})
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    ax.axis("off")
    fig.savefig(OUT, dpi=100, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    main()
