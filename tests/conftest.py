"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (reference data from TorchANI and PySCF). Tests that need it fail
    loudly when it is missing rather than skipping."""
    if not REFERENCE.is_dir():
        raise FileNotFoundError(f"reference data folder not found: {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def h2_labels(reference_dir):
    """The tutorial's 451 H2 bond lengths (Angstrom) and HF/STO-3G, CISD/cc-pVDZ energies (Ha)."""
    with np.load(reference_dir / "h2_labels.npz") as f:
        return {k: f[k] for k in ("r", "hf", "cisd")}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks run far faster on one thread than on two (intra-op parallelism costs more
    than it gains, and oversubscribes a busy 2-core CI machine); restore the setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's label cache: LEVELUP_CACHE_DIR points to a per-session
    folder unless a test sets its own. The ANI-1x wheel fetched by `make test` is linked in."""
    import os

    root = tmp_path_factory.getbasetemp() / "levelup-cache"
    root.mkdir(exist_ok=True)
    wheels = Path(os.environ.get("LEVELUP_CACHE_DIR", "")) if os.environ.get(
        "LEVELUP_CACHE_DIR") else None
    if wheels is None:
        from platformdirs import user_cache_dir

        wheels = Path(user_cache_dir("levelup"))
    target = root / "wheels"
    if (wheels / "wheels").is_dir() and not target.exists():
        target.symlink_to(wheels / "wheels")
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(root))
