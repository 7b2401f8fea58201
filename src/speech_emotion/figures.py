"""Figures: one renderer and one PNG policy for every picture the pipeline draws.

Importing this module selects matplotlib's Agg backend before pyplot loads (no display
needed; the same renderer everywhere, so the same figure gives the same pixels), so
every module that draws takes pyplot from here:

    from .figures import PNG_METADATA, plt
    fig.savefig(path, format="png", metadata=PNG_METADATA)
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (only after the backend is chosen)

# Fixed PNG metadata: no software version or date, so a rerun writes the same bytes.
PNG_METADATA = {"Software": None}

__all__ = ["PNG_METADATA", "plt"]
