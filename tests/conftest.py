"""Shared fixtures: a small synthetic corpus in RAVDESS layout and its data.csv table.

Session-scoped: generated once per test run (a few seconds), read-only for the tests;
a test that needs to change files copies what it needs into its own tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SYNTHETIC_ACTORS = 6
SYNTHETIC_SEED = 0
# The development copy of the real RAVDESS (actors 01-12), beside the clone; optional.
RAVDESS_DEV = Path(__file__).resolve().parents[2] / "shared" / "ravdess-dev"


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A raw folder `Actor_01..Actor_06/03-01-*.wav` (360 files) from the synthetic source."""
    from speech_emotion.sources import synthetic

    root = tmp_path_factory.mktemp("synthetic") / "ravdess"
    synthetic.generate(root, actors=SYNTHETIC_ACTORS, seed=SYNTHETIC_SEED, progress=False)
    return root


@pytest.fixture(scope="session")
def synthetic_table(synthetic_corpus):
    """The data.csv DataFrame of `synthetic_corpus` (paths relative to it)."""
    from speech_emotion.labels import build_table

    return build_table(synthetic_corpus)


@pytest.fixture(scope="session")
def ravdess_dev() -> Path:
    """The real development copy (720 FLAC files); the test is skipped where it is absent."""
    if not (RAVDESS_DEV / "Actor_01").is_dir():
        pytest.skip(f"{RAVDESS_DEV} not present")
    return RAVDESS_DEV


@pytest.fixture(autouse=True)
def one_thread():
    """Every test on one torch thread: tiny models train faster, and CI's two cores are shared
    (idle intra-op threads spinning beside another process cost far more than they give)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
