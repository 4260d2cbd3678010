"""Levels of theory: "method/basis" strings, parsed and checked before any calculation starts.

A level is written ``"METHOD/BASIS"``, case-insensitive: ``"HF/STO-3G"``, ``"cisd/cc-pvdz"``,
``"B3LYP/6-31G*"``, ``"wB97X/def2-SVP"``, ``"CCSD(T)/aug-cc-pVTZ"``. Methods are HF (RHF for
closed shells, UHF otherwise; RHF and UHF force a reference), any DFT functional PySCF knows, MP2,
CISD, CCSD, CCSD(T) and FCI. Basis sets are any PySCF knows by name.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from levelup.elements import atomic_number, symbol
from levelup.errors import LevelOfTheoryError

#: Wave-function methods: canonical spelling -> family.
WAVEFUNCTION_METHODS = {
    "HF": "hf", "RHF": "hf", "UHF": "hf", "MP2": "mp2", "CISD": "cisd", "CCSD": "ccsd",
    "CCSD(T)": "ccsd(t)", "FCI": "fci",
}
#: Families for which PySCF has analytic nuclear gradients.
ANALYTIC_GRADIENTS = frozenset({"hf", "dft", "mp2", "cisd", "ccsd", "ccsd(t)"})
#: Shown when a method or basis is unknown.
COMMON_FUNCTIONALS = ("B3LYP", "PBE", "PBE0", "BLYP", "TPSS", "M06-2X", "wB97X", "wB97X-D",
                      "wB97M-V", "CAM-B3LYP", "r2SCAN")
COMMON_BASES = ("STO-3G", "3-21G", "6-31G*", "6-31G**", "6-311+G(d,p)", "cc-pVDZ", "cc-pVTZ",
                "aug-cc-pVDZ", "def2-SVP", "def2-TZVP")
FORCE_MODES = ("analytic", "numerical")


@dataclass(frozen=True)
class Level:
    """A parsed level of theory.

    Attributes:
        method: canonical spelling of the method ("HF", "CCSD(T)", "B3LYP", "wB97X").
        basis: canonical spelling of the basis ("STO-3G", "cc-pVDZ", "6-31G*", "def2-SVP").
        family: "hf", "dft", "mp2", "cisd", "ccsd", "ccsd(t)" or "fci".
        reference: "auto" (RHF for closed shells, UHF otherwise), "rhf" or "uhf".
    """

    method: str
    basis: str
    family: str
    reference: str = "auto"

    @property
    def name(self) -> str:
        """The level as "method/basis" in canonical spelling: the default property name."""
        return f"{self.method}/{self.basis}"

    @property
    def key(self) -> str:
        """Spelling-independent identity of the level (used in cache keys)."""
        return f"{self.method.lower()}/{normalized_basis(self.basis)}"

    @property
    def xc(self) -> str:
        """The functional as PySCF's ``xc`` string (DFT only)."""
        return self.method.lower()

    def __str__(self) -> str:
        return self.name


def normalized_basis(name: str) -> str:
    """A basis name the way PySCF matches it: lower case, without '-', '_' and spaces."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def parse_level(level: str | Level) -> Level:
    """Parse ``"method/basis"`` (case-insensitive) into a :class:`Level`.

    Raises LevelOfTheoryError, naming what was received and the valid choices, when the text is
    not "method/basis" or the method or basis is unknown to PySCF.
    """
    if isinstance(level, Level):
        return level
    if not isinstance(level, str) or level.count("/") < 1:
        raise LevelOfTheoryError(
            f"a level of theory is written 'method/basis', e.g. 'HF/STO-3G' or 'CISD/cc-pVDZ'; "
            f"got {level!r}"
        )
    method_text, basis_text = (part.strip() for part in level.split("/", 1))
    if not method_text or not basis_text:
        raise LevelOfTheoryError(
            f"level {level!r} lacks a method or a basis; write 'method/basis', e.g. 'HF/STO-3G'"
        )
    method, family, reference = _parse_method(method_text, level)
    basis = _parse_basis(basis_text, level)
    return Level(method=method, basis=basis, family=family, reference=reference)


def _parse_method(text: str, level: str) -> tuple[str, str, str]:
    upper = text.upper()
    if upper in WAVEFUNCTION_METHODS:
        reference = upper.lower() if upper in ("RHF", "UHF") else "auto"
        return upper, WAVEFUNCTION_METHODS[upper], reference
    problem = _functional_problem(text)
    if problem is None:
        return _canonical_functional(text), "dft", "auto"
    from pyscf.dft import libxc

    names = {n.lower(): n for n in (*libxc.XC_CODES, *libxc.XC_ALIAS)}
    close = difflib.get_close_matches(text.lower(), [*names, *(m.lower() for m in
                                                                 WAVEFUNCTION_METHODS)], n=4)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise LevelOfTheoryError(
        f"unknown method {text!r} in level {level!r} ({problem}); valid methods: "
        f"{', '.join(m for m in WAVEFUNCTION_METHODS)}, or a DFT functional PySCF knows "
        f"({', '.join(COMMON_FUNCTIONALS)}, ...){hint}"
    )


def _functional_problem(text: str) -> str | None:
    """None when PySCF can run DFT with functional ``text``, else why not."""
    from pyscf.dft import libxc
    from pyscf.scf import dispersion

    try:
        xc, _nlc, disp = dispersion.parse_dft(text.lower())
        libxc.parse_xc(xc)
    except (KeyError, ValueError, NotImplementedError, TypeError) as exc:
        return f"not a functional PySCF knows: {str(exc).strip(chr(34))}"
    if disp and importlib.util.find_spec("pyscf.dispersion") is None:
        return (f"the dispersion correction {disp!r} needs the pyscf-dispersion package "
                "(pip install pyscf-dispersion)")
    return None


def _canonical_functional(text: str) -> str:
    lower = text.lower()
    if lower.startswith("wb97"):
        return "wB97" + lower[4:].upper()
    if lower == "r2scan":
        return "r2SCAN"
    return text.upper()


def _parse_basis(text: str, level: str) -> str:
    from pyscf.gto import basis as pyscf_basis

    if "\n" in text or not re.fullmatch(r"[A-Za-z0-9+*(),\-_ .]+", text):
        raise LevelOfTheoryError(f"basis {text!r} in level {level!r} is not a basis-set name")
    name = normalized_basis(text)
    if name not in pyscf_basis.ALIAS and not pyscf_basis._is_pople_basis(name):
        close = difflib.get_close_matches(name, list(pyscf_basis.ALIAS), n=4)
        hint = f"; close matches (PySCF spelling): {', '.join(close)}" if close else ""
        raise LevelOfTheoryError(
            f"unknown basis {text!r} in level {level!r}; common choices: "
            f"{', '.join(COMMON_BASES)}; PySCF knows {len(pyscf_basis.ALIAS)} basis sets by "
            f"name (pyscf.gto.basis.ALIAS) and any Pople basis{hint}"
        )
    return canonical_basis(text)


def canonical_basis(text: str) -> str:
    """The usual spelling of a basis name: "cc-pvdz" -> "cc-pVDZ", "6-31g*" -> "6-31G*"."""
    lower = text.strip().lower()
    if m := re.fullmatch(r"sto-?(\d)g", lower):
        return f"STO-{m[1]}G"
    if m := re.fullmatch(r"(\d)-?(\d+)(\+{0,2})g(.*)", lower):
        return f"{m[1]}-{m[2]}{m[3]}G{m[4]}"
    if m := re.fullmatch(r"((?:d-|t-)?aug-|jun-|may-|apr-)?cc-p(w?)(c?)v([dtq56])z(.*)", lower):
        return (f"{m[1] or ''}cc-p{m[2]}{m[3].upper()}V{m[4].upper()}Z"
                f"{m[5].upper() if m[5] else ''}")
    if m := re.fullmatch(r"def2-?(.*)", lower):
        return f"def2-{m[1].upper()}"
    return lower


def check_level(level: Level, elements: Iterable[int | str], *, forces: str = "none",
                max_determinants: int | None = None,
                systems: Iterable[tuple[tuple[int, ...], int, int]] = ()) -> None:
    """Check, before any calculation, that ``level`` can treat molecules made of ``elements``.

    Args:
        level: the parsed level.
        elements: atomic numbers (or symbols) present.
        forces: "none", "analytic" or "numerical".
        max_determinants: with FCI, the largest CI space allowed.
        systems: (species, charge, multiplicity) of each distinct molecule, for the FCI size check.

    Raises LevelOfTheoryError when the basis lacks an element, when analytic forces are asked for
    a method without analytic gradients, or when FCI would be too large.
    """
    zs = sorted({atomic_number(e) for e in elements})
    missing = [symbol(z) for z in zs if not basis_has_element(level.basis, symbol(z))]
    if missing:
        have = [symbol(z) for z in zs if symbol(z) not in missing]
        raise LevelOfTheoryError(
            f"basis {level.basis} (level {level.name}) has no functions for "
            f"{', '.join(missing)}" + (f" (it does cover {', '.join(have)})" if have else "")
            + "; choose a basis that covers every element, e.g. def2-SVP or def2-TZVP"
        )
    if forces not in ("none", *FORCE_MODES):
        raise LevelOfTheoryError(f"forces must be one of none, analytic, numerical; got {forces!r}")
    if forces == "analytic" and level.family not in ANALYTIC_GRADIENTS:
        raise LevelOfTheoryError(
            f"PySCF has no analytic gradients for {level.method} (level {level.name}); ask for "
            f"finite-difference forces (forces='numerical', --forces numerical: 6N+1 energies per "
            f"molecule) or use a method with analytic gradients: HF, DFT, MP2, CISD, CCSD, CCSD(T)"
        )
    if level.family == "fci" and max_determinants is not None:
        for species, charge, multiplicity in systems:
            n = fci_determinants(level.basis, species, charge, multiplicity)
            if n > max_determinants:
                raise LevelOfTheoryError(
                    f"FCI/{level.basis} on a molecule with atoms {list(species)} (charge "
                    f"{charge}, multiplicity {multiplicity}) needs {n:.3g} determinants, more "
                    f"than the limit {max_determinants:.3g}; FCI is for tiny systems: use "
                    f"CCSD(T) or CISD, a smaller basis, or raise LabelSettings.fci_max_determinants"
                )


def basis_has_element(basis: str, element: str) -> bool:
    """True when PySCF's basis ``basis`` has functions for ``element``."""
    from pyscf.gto import basis as pyscf_basis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PySCF suggests basis-set-exchange for missing ones
        try:
            return bool(pyscf_basis.load(basis, element))
        except (RuntimeError, KeyError, ValueError, AttributeError, OSError):
            return False


def basis_ecp(basis: str, elements: Iterable[str]) -> str | None:
    """``basis`` when it carries effective core potentials for any of ``elements`` (def2 on
    elements past Kr, LANL2DZ, ...), else None. PySCF applies such ECPs only when asked."""
    from pyscf.gto import basis as pyscf_basis

    if normalized_basis(basis) not in pyscf_basis.ALIAS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for element in elements:
            try:
                if pyscf_basis.load_ecp(basis, element):
                    return basis
            except (RuntimeError, KeyError, ValueError, AttributeError, OSError):
                continue
    return None


def fci_determinants(basis: str, species: Iterable[int], charge: int, multiplicity: int) -> int:
    """Number of determinants of FCI for a molecule (all electrons, all orbitals)."""
    from pyscf import gto

    symbols = [symbol(z) for z in species]
    atoms = [(s, (0.0, 0.0, 2.0 * i)) for i, s in enumerate(symbols)]
    mol = gto.M(atom=atoms, basis=basis, charge=charge, spin=multiplicity - 1, verbose=0)
    n_orb = mol.nao_nr()
    n_alpha, n_beta = mol.nelec
    return math.comb(n_orb, n_alpha) * math.comb(n_orb, n_beta)


def forces_mode(forces: bool | str | None) -> str:
    """Normalize the ``forces`` argument: False/None -> "none", True -> "analytic",
    "analytic" / "numerical" as given."""
    if forces is None or forces is False:
        return "none"
    if forces is True:
        return "analytic"
    if isinstance(forces, str) and forces.lower() in FORCE_MODES:
        return forces.lower()
    raise LevelOfTheoryError(
        f"forces must be False, True (analytic), 'analytic' or 'numerical' (finite differences); "
        f"got {forces!r}"
    )
