"""Checks of a converted dataset that warn rather than refuse: label sizes that no DFT set has
in the declared units (a unit flag is likely wrong), and splits that came out empty.

Plausible ranges, in the library's units after conversion:
- force RMS over all components: DFT sets lie between about 0.05 eV/A (near-equilibrium
  structures) and 5 eV/A (hot MD, strained cells); above FORCE_RMS_HIGH, energies in eV declared
  as hartree (x27.2) or forces in eV/Bohr declared per Angstrom are the usual causes; below
  FORCE_RMS_LOW, hartree or kcal/mol data declared as eV.
- energy per atom: total energies of pseudopotential codes lie within about -2,000..0 eV/atom
  and all-electron ones within -1e6..0 eV/atom (uranium, -7.6e5); a median |E|/N above
  ENERGY_PER_ATOM_HIGH is no DFT energy in eV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FORCE_RMS_HIGH = 10.0  # eV/Angstrom
FORCE_RMS_LOW = 0.005  # eV/Angstrom
ENERGY_PER_ATOM_HIGH = 1.0e6  # eV/atom
_UNIT_FLAGS = "--energy-unit/--length-unit (units: in a --dataset file)"


def unit_warnings(
    energy_per_atom: np.ndarray, force_rms: float | None, units: Mapping[str, str]
) -> list[str]:
    """Messages for label sizes implausible for DFT in `units` (the declared file units)."""
    declared = f"declared {units.get('energy', 'eV')} and {units.get('length', 'angstrom')}"
    messages = []
    if force_rms is not None and force_rms > FORCE_RMS_HIGH:
        messages.append(
            f"force RMS {force_rms:.3g} eV/A after conversion ({declared}): DFT sets lie between "
            f"0.05 and 5 eV/A; check {_UNIT_FLAGS}: are the files already in eV and Angstrom?"
        )
    if force_rms is not None and 0 < force_rms < FORCE_RMS_LOW:
        messages.append(
            f"force RMS {force_rms:.3g} eV/A after conversion ({declared}): smaller than any DFT "
            f"set's; check {_UNIT_FLAGS}: are the files in hartree or kcal/mol?"
        )
    energies = np.abs(np.asarray(energy_per_atom, dtype=np.float64))
    if len(energies) and float(np.median(energies)) > ENERGY_PER_ATOM_HIGH:
        messages.append(
            f"median |energy| per atom {float(np.median(energies)):.3g} eV after conversion "
            f"({declared}): no DFT total energy is that large; check {_UNIT_FLAGS}"
        )
    return messages


def split_warnings(splits: Mapping[str, int], policy: str, asked: Mapping[str, float]) -> list[str]:
    """Messages for val/test splits that came out empty although a fraction asked for them
    (or with no fraction at all), each naming the fix."""
    messages = []
    fixes = {
        "val": "--val-fraction (or --val-input), or --carve-val 0.1 when fine-tuning",
        "test": "--test-fraction (or --test-input), or --carve-test 0.1 when fine-tuning",
    }
    total = sum(splits.values())
    for split in ("val", "test"):
        if splits.get(split, 0):
            continue
        why = (
            f"{total} frames are too few for a {asked[split]:g} share"
            if asked.get(split)
            else "no file or fraction asked for it"
        )
        messages.append(f"the {split} split is empty ({why}; policy {policy}): pass {fixes[split]}")
    return messages


def label_summary(summary: Any) -> dict[str, Any]:
    """What the store records about its label sizes (eV/atom, eV/A)."""
    energies = np.asarray(summary.energy_per_atom, dtype=np.float64)
    force_rms = (
        float(np.sqrt(summary.force_squares / summary.force_components))
        if summary.force_components
        else None
    )
    return {
        "energy_per_atom_median_ev": float(np.median(energies)) if len(energies) else None,
        "force_rms_ev_per_a": force_rms,
    }
