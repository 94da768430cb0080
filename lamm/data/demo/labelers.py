"""The offline labelers of the demo data: ASE's EMT, `VariantEMT` (EMT with parameters changed
by a few percent) and tblite's GFN-xTB, in eV and eV/Angstrom.

Every labeling failure (an SCF that does not converge, a relaxation that runs out of steps,
a conformer RDKit cannot embed) raises `DemoFailure` with a short, countable reason; the
orchestrator counts the reasons per subset and reports them. Any other exception is a bug
and propagates.

tblite is called through its own interface (not the ASE wrapper) so that unit conversions
are visible here: tblite works in Bohr and Hartree; forces are minus the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.optimize import LBFGS
from ase.units import Bohr, Hartree

XTB_MAX_ITERATIONS = 250  # tblite's default SCF limit


class DemoFailure(Exception):
    """A structure that could not be generated or labeled; `reason` is the category counted."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Frame:
    """One labeled geometry along a relaxation."""

    positions: np.ndarray  # [n, 3] Angstrom
    energy: float  # eV
    forces: np.ndarray  # [n, 3] eV/Angstrom, unconstrained (fixed atoms keep their forces)


def emt_energy_forces(atoms: Atoms) -> tuple[float, np.ndarray]:
    """EMT total energy (eV) and forces (eV/A) of `atoms`; constraints are ignored."""
    probe = atoms.copy()
    probe.set_constraint()
    probe.calc = EMT()
    return float(probe.get_potential_energy()), np.array(probe.get_forces(), dtype=np.float64)


def emt_relax(atoms: Atoms, *, fmax: float, max_steps: int) -> tuple[list[Frame], bool]:
    """Relax `atoms` in place with EMT and L-BFGS (its FixAtoms constraints respected).

    Returns every evaluated geometry, initial one first, with the EMT energy and the raw
    (unconstrained) forces, and whether the largest force on a free atom fell below `fmax`.
    L-BFGS needs no Hessian diagonalization, so a step costs O(n) beyond the EMT call; its
    initial curvature guess of 30 eV/A^2 (ASE: 70) suits EMT and saves about a third of the steps.
    """
    return relax(atoms, EMT(), fmax=fmax, max_steps=max_steps, alpha=30.0)


def relax(
    atoms: Atoms, calculator, *, fmax: float, max_steps: int, alpha: float = 70.0
) -> tuple[list[Frame], bool]:
    """Relax `atoms` in place with `calculator` and L-BFGS (initial curvature `alpha` eV/A^2);
    see `emt_relax` for what is returned."""
    atoms.calc = calculator
    frames: list[Frame] = []

    def record() -> None:
        results = atoms.calc.results
        frames.append(
            Frame(
                positions=np.array(atoms.positions, dtype=np.float64),
                energy=float(results["energy"]),
                forces=np.array(results["forces"], dtype=np.float64),
            )
        )

    optimizer = LBFGS(atoms, logfile=None, alpha=alpha)
    optimizer.attach(record, interval=1)
    converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
    if not frames or not np.allclose(frames[-1].positions, atoms.positions):
        atoms.get_potential_energy()  # the final geometry, evaluated once more if not yet recorded
        atoms.get_forces()
        record()
    return frames, converged


def xtb_energy_forces(
    numbers: np.ndarray,
    positions: np.ndarray,
    *,
    method: str,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    forces: bool = True,
    max_iterations: int = XTB_MAX_ITERATIONS,
) -> tuple[float, np.ndarray | None]:
    """GFN-xTB single point (tblite): total energy in eV and forces in eV/A (or None).

    `cell`/`pbc` make it periodic (Gamma point, tblite's lattice sums). Raises DemoFailure
    with reason "<method> SCF not converged" when tblite gives up.
    """
    from tblite.interface import Calculator  # heavy import, only in labeling processes

    periodic = pbc is not None and bool(np.any(pbc))
    calculator = Calculator(
        method,
        np.asarray(numbers, dtype=np.int32),
        np.asarray(positions, dtype=np.float64) / Bohr,
        lattice=np.asarray(cell, dtype=np.float64) / Bohr if periodic else None,
        periodic=np.asarray(pbc, dtype=bool) if periodic else None,
    )
    calculator.set("verbosity", 0)
    calculator.set("max-iter", max_iterations)
    try:
        results = calculator.singlepoint()
    except RuntimeError as err:  # TBLiteRuntimeError derives from RuntimeError
        text = str(err)
        reason = f"{method} SCF not converged" if "converge" in text.lower() else f"{method} failed"
        raise DemoFailure(reason, text) from None
    energy = float(results.get("energy")) * Hartree
    if not np.isfinite(energy):
        raise DemoFailure(f"{method} non-finite energy")
    if not forces:
        return energy, None
    gradient = np.array(results.get("gradient"), dtype=np.float64)  # [n, 3] Hartree/Bohr
    return energy, -gradient * (Hartree / Bohr)


# The downstream labeler: EMT with every element's parameters changed by the same few percent,
# "the same physics, a slightly different functional" (PBE vs RPBE, HME21 vs OC20). Relative
# factors on ASE's table (`ase.calculators.emt.parameters`); parameters not named keep their
# value, and so do the cutoff and its smoothing (ASE's, from the unmodified table).
# s0 up 1.5%: longer bonds, as RPBE's lattice constants exceed PBE's by 1-2%; E0 down 8%
# (E0 < 0, so weaker cohesion, as RPBE binds less than PBE); V0 down 5%, kappa down 2%: a
# softer pair repulsion.
EMT_VARIANT_FACTORS = {"E0": 0.92, "s0": 1.015, "V0": 0.95, "kappa": 0.98}
_EMT_FIELDS = ("E0", "s0", "V0", "eta2", "kappa", "lambda", "n0")  # the order of ASE's table


def emt_variant_parameters(factors: dict[str, float] | None = None) -> dict[str, tuple[float, ...]]:
    """ASE's EMT parameter table with each named field multiplied by its factor (all elements)."""
    from ase.calculators.emt import parameters

    factors = EMT_VARIANT_FACTORS if factors is None else factors
    unknown = set(factors) - set(_EMT_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown EMT parameters {sorted(unknown)}; expected some of {_EMT_FIELDS}"
        )
    return {
        symbol: tuple(
            value * factors.get(name, 1.0) for name, value in zip(_EMT_FIELDS, row, strict=True)
        )
        for symbol, row in parameters.items()
    }


class VariantEMT(EMT):
    """ASE's EMT evaluated with another parameter table (default: `emt_variant_parameters()`).

    ASE's `initialize` sets up the cutoff, the neighbour list and the per-element arrays from
    its module table; the per-element arrays are then recomputed here from `table` with ASE's
    formulas (the same units: eV, bohr, bohr^-1, bohr^-3). With the unmodified table the result
    equals EMT's bit for bit (tested)."""

    def __init__(self, table: dict[str, tuple[float, ...]] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.table = emt_variant_parameters() if table is None else table

    def initialize(self, atoms: Atoms) -> None:
        from ase.data import chemical_symbols

        super().initialize(atoms)
        for i, z in enumerate(self.par["Z"]):
            e0, s0, v0, eta2, kappa, lmbda, n0 = self.table[chemical_symbols[int(z)]]
            s0, eta2, kappa = s0 * Bohr, eta2 / Bohr, kappa / Bohr
            gamma1, gamma2 = self._calc_gammas(s0, eta2, kappa)
            self.par["E0"][i] = e0
            self.par["s0"][i] = s0
            self.par["V0"][i] = v0
            self.par["eta2"][i] = eta2
            self.par["kappa"][i] = kappa
            self.par["lambda"][i] = lmbda / Bohr
            self.par["n0"][i] = n0 / Bohr**3
            self.par["inv12gamma1"][i] = 1.0 / (12.0 * gamma1)
            self.par["neghalfv0overgamma2"][i] = -0.5 * v0 / gamma2
        self.chi = self.par["n0"][None, :] / self.par["n0"][:, None]
