"""Numerical settings of a labelling run: SCF convergence, retries, grids, finite differences."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from levelup.errors import ConfigError


@dataclass(frozen=True)
class LabelSettings:
    """How each quantum-chemistry calculation is converged. The defaults are PySCF's own.

    Attributes:
        conv_tol: SCF convergence threshold on the energy change, Hartree (PySCF default 1e-9;
            PySCF derives the orbital-gradient threshold from it as sqrt(conv_tol)).
        max_cycle: SCF iterations allowed per attempt (PySCF default 50).
        retries: after a failed SCF, try again with damping + level shift, then with a
            second-order (Newton) solver, before recording the molecule as failed.
        grid_level: DFT integration grid level 0-9 (None: PySCF's default, 3).
        fd_step: displacement of each Cartesian coordinate for finite-difference forces,
            Angstrom (central differences, used only with ``forces="numerical"``).
        fci_max_determinants: FCI is refused (before any calculation) when the number of
            determinants would exceed this; FCI is for tiny systems.
    """

    conv_tol: float = 1e-9  # PySCF's default SCF energy threshold
    max_cycle: int = 50  # PySCF's default
    retries: bool = True  # damping + level shift, then second-order SCF
    grid_level: int | None = None  # None keeps PySCF's default DFT grid (level 3)
    fd_step: float = 1e-3  # Angstrom; error O(step^2), far below SCF noise at 1e-3
    fci_max_determinants: int = 20_000_000  # about 0.3 GB per CI vector

    def __post_init__(self) -> None:
        if not 0 < self.conv_tol < 1e-3:
            raise ConfigError(f"conv_tol must be in (0, 1e-3) Hartree; got {self.conv_tol}")
        if self.max_cycle < 1:
            raise ConfigError(f"max_cycle must be at least 1; got {self.max_cycle}")
        if self.grid_level is not None and not 0 <= self.grid_level <= 9:
            raise ConfigError(f"grid_level must be 0..9 or None; got {self.grid_level}")
        if not 0 < self.fd_step <= 0.05:
            raise ConfigError(f"fd_step must be in (0, 0.05] Angstrom; got {self.fd_step}")

    def result_key(self) -> str:
        """The settings that change converged numbers (part of every cache key).

        ``max_cycle`` and ``retries`` only decide whether a calculation converges, not what it
        converges to, so they are left out: changing them reuses the cache.
        """
        grid = "default" if self.grid_level is None else str(self.grid_level)
        return f"tol={self.conv_tol:.3e};grid={grid}"

    def as_dict(self) -> dict:
        """The settings as a JSON-friendly dict (recorded in each label's spec)."""
        return asdict(self)
