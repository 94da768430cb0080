"""Universal interatomic potentials trained on real DFT, used as labelers of the demo data.

SevenNet (`sevenn`) and CHGNet (`chgnet`) ship their weights inside their PyPI wheels, so they
label offline. Both were trained on the Materials Project's relaxation trajectories (MPtrj:
PBE and PBE+U, 89 elements); CHGNet also ships an r2SCAN transfer model. Labels from them are
not DFT, but they carry DFT's physics across the periodic table, where EMT knows 7 metals and
GFN2-xTB is a molecular method. They are an optional extra: `pip install .[labelers]`.

Each labeler is named (`LABELERS`) and records its provenance (package, version, model,
functional) in every store it labels. Calculators are loaded once per process (`calculator`),
and every call returns energy (eV), forces (eV/A) and stress (eV/A^3, ASE's sign), float64.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from lamm.data.demo.labelers import (
    DemoFailure,
    Frame,
    emt_energy_forces,
    emt_relax,
    relax,
)

MAX_FORCE = 50.0  # eV/A: a label beyond this is an unphysical geometry, counted and dropped


@dataclass(frozen=True)
class UniversalLabeler:
    """A named universal potential: `package` loads `model` (and, for SevenNet, a modality)."""

    name: str
    package: str  # "sevenn" | "chgnet"
    model: str  # the package's own model name
    functional: str  # what its training data were computed with
    modal: str | None = None

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": package_version(self.package),
            "model": self.model,
            "functional": self.functional,
        }


LABELERS: dict[str, UniversalLabeler] = {
    labeler.name: labeler
    for labeler in (
        UniversalLabeler("sevennet-0", "sevenn", "7net-0", "PBE/PBE+U (MPtrj)"),
        UniversalLabeler("sevennet-l3i5", "sevenn", "7net-l3i5", "PBE/PBE+U (MPtrj)"),
        UniversalLabeler("chgnet-0.3.0", "chgnet", "0.3.0", "PBE/PBE+U (MPtrj)"),
        UniversalLabeler("chgnet-r2scan", "chgnet", "r2scan", "r2SCAN (MP r2SCAN, transfer)"),
    )
}


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def labeler(name: str) -> UniversalLabeler:
    if name not in LABELERS:
        raise ValueError(f"unknown labeler {name!r}; expected one of {', '.join(LABELERS)}")
    return LABELERS[name]


def require_labelers(names: list[str]) -> None:
    """Raise with the install command when a package of these labelers is missing."""
    missing = sorted(
        {
            labeler(n).package
            for n in names
            if package_version(labeler(n).package) == "not installed"
        }
    )
    if missing:
        raise RuntimeError(
            f"the universal labelers need {', '.join(missing)}: pip install '.[labelers]' "
            "(or use the light labels: data.labels: light)"
        )


@lru_cache(maxsize=None)
def calculator(name: str) -> Calculator:
    """The ASE calculator of a labeler, loaded once per process on the CPU."""
    spec = labeler(name)
    require_labelers([name])
    import warnings

    # Both packages warn on every call (tensor copies, isolated atoms of a molecule in a box):
    # thousands of lines per labeling job that say nothing about the labels.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(chgnet|sevenn|torch)\b")
    warnings.filterwarnings("ignore", message=".*isolated atom.*")
    with warnings.catch_warnings():  # and about optional CUDA extensions when loading
        warnings.simplefilter("ignore")
        if spec.package == "sevenn":
            from sevenn.calculator import SevenNetCalculator

            kwargs = {"modal": spec.modal} if spec.modal else {}
            return SevenNetCalculator(spec.model, device="cpu", **kwargs)
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        model = CHGNet.load(model_name=spec.model, use_device="cpu", verbose=False)
        return CHGNetCalculator(model, use_device="cpu")


def label(atoms: Atoms, name: str) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy eV, forces [n, 3] eV/A, stress [3, 3] eV/A^3 or None) of `atoms` by `name`.

    Stress only for cells periodic in all three directions. Raises a counted DemoFailure for
    non-finite labels or forces above MAX_FORCE (atoms pushed into each other)."""
    probe = atoms.copy()
    probe.set_constraint()
    probe.calc = calculator(name)
    energy = float(probe.get_potential_energy())
    forces = np.array(probe.get_forces(), dtype=np.float64)
    stress = None
    if probe.pbc.all():
        stress = np.array(probe.get_stress(voigt=False), dtype=np.float64)
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise DemoFailure(f"{name} non-finite label")
    if np.abs(forces).max() > MAX_FORCE:
        raise DemoFailure(f"{name} forces above {MAX_FORCE:g} eV/A")
    return energy, forces, stress


def relax_with(
    atoms: Atoms, labeler: str | None, *, fmax: float, max_steps: int
) -> tuple[list[Frame], bool]:
    """`emt_relax` when `labeler` is None (the light labels), else a relaxation with that
    universal potential (`universal.LABELERS`)."""
    if labeler is None:
        return emt_relax(atoms, fmax=fmax, max_steps=max_steps)
    frames, converged = relax(atoms, calculator(labeler), fmax=fmax, max_steps=max_steps)
    if not all(np.isfinite(f.energy) and np.isfinite(f.forces).all() for f in frames):
        raise DemoFailure(f"{labeler} non-finite label")
    return frames, converged


def energy_forces_with(atoms: Atoms, labeler: str | None) -> tuple[float, np.ndarray]:
    """`emt_energy_forces` when `labeler` is None, else the universal potential's."""
    if labeler is None:
        return emt_energy_forces(atoms)
    energy, forces, _ = label(atoms, labeler)
    return energy, forces


_LIGHT = {  # the light label set's labelers: name -> (package, model, functional)
    "emt": ("ase", "EMT", "effective-medium theory (ASE's parameters)"),
    "variant-emt": ("ase", "VariantEMT", "EMT with its parameters changed a few percent"),
    "gfn2-xtb": ("tblite", "GFN2-xTB", "GFN2-xTB tight binding"),
}


def provenance(name: str) -> dict[str, Any]:
    """What labeled a store: name, package, version, model, functional ({"name": "none"} for
    unlabeled stores)."""
    if name in LABELERS:
        return LABELERS[name].provenance()
    if name in _LIGHT:
        package, model, functional = _LIGHT[name]
        return {
            "name": name,
            "package": package,
            "version": package_version(package),
            "model": model,
            "functional": functional,
        }
    return {"name": "none"}
