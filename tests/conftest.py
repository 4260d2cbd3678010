"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """tests/data (reference data from TorchANI and PySCF; tests/data/README.md says where each
    number came from). Tests that need it fail loudly when it is missing rather than skipping."""
    if not REFERENCE.is_dir():
        raise FileNotFoundError(f"reference data folder not found: {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def h2_labels(reference_dir):
    """The tutorial's 451 H2 bond lengths (Angstrom) and HF/STO-3G, CISD/cc-pVDZ energies (Ha)."""
    with np.load(reference_dir / "h2_labels.npz") as f:
        return {k: f[k] for k in ("r", "hf", "cisd")}


@pytest.fixture
def water():
    """Water near its HF/STO-3G minimum (O-H 0.989 Angstrom, H-O-H 100 degrees) as ase.Atoms,
    oxygen first; a new object for each test, so a test may move its atoms."""
    from ase import Atoms

    angle = np.radians(100.0)
    return Atoms("OH2", [[0.0, 0.0, 0.0], [0.989, 0.0, 0.0],
                         [0.989 * np.cos(angle), 0.989 * np.sin(angle), 0.0]])


@pytest.fixture
def h2_atoms():
    """A factory: ``h2_atoms(r)`` is H2 as ase.Atoms along z with bond length r (Angstrom)."""
    from ase import Atoms

    def make(r: float = 0.74):
        return Atoms("H2", [[0.0, 0.0, 0.0], [0.0, 0.0, r]])

    return make


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_for_the_session():
    """One torch thread from the start, so module- and session-scoped fixtures (which run before
    any function-scoped fixture) train on one thread too."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks run far faster on one thread than on two (intra-op parallelism costs more
    than it gains, and oversubscribes a busy 2-core CI machine); restore the setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def session_label_cache(tmp_path_factory) -> Path:
    """One label cache file for the whole test session (labels are computed once)."""
    return tmp_path_factory.getbasetemp() / "labels.sqlite"


@pytest.fixture(autouse=True)
def _private_label_cache(session_label_cache, monkeypatch):
    """Tests never write to the user's label cache: the default cache is a session file, unless
    a test points LEVELUP_CACHE_DIR somewhere itself."""
    import os

    import levelup.qm.cache

    original = levelup.qm.cache.default_cache_path
    start = os.environ.get("LEVELUP_CACHE_DIR")

    def default_cache_path():
        if os.environ.get("LEVELUP_CACHE_DIR") != start:
            return original()
        return session_label_cache

    monkeypatch.setattr(levelup.qm.cache, "default_cache_path", default_cache_path)
