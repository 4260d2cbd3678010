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
