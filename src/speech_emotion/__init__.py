"""Speech emotion recognition on RAVDESS: a reproducible DVC pipeline."""

__version__ = "0.1.0"
