"""The demo subsets, the families of systems that produce them, and their sizes per scale.

Sizes keep LaMM Table 2's ordering in compressed proportions:
    n_i = max(smallest, round(largest * (N_i / N_OC20)^0.35))
with N_i the paper's sample counts, so OC20 S2EF stays the largest, PubChem3D second and the
IS2RE subsets the smallest, while the smallest keeps enough samples to learn from.

Subsets that come from the same relaxations (OC20, OC22, ODAC23: S2EF-T frames and IS2RE
initial structures) share a family; its S2EF subset takes `ceil(n_s2ef / n_is2re)` frames per
relaxation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lamm.data.demo.alloy_md import hme21_md_system
from lamm.data.demo.frameworks import odac_system
from lamm.data.demo.molecules import pubchem3d_system, qm7x_system, qmugs_system
from lamm.data.demo.reactions import transition1x_system
from lamm.data.demo.slabs import oc20_system, oc22_system
from lamm.data.demo.systems import SystemRequest, SystemResult

COMPRESSION = 0.35
HME21_SNAPSHOTS = 2  # MD snapshots per trajectory (one system; they share a split)
ADSORPTION_REFERENCE = {
    "oc20_is2re": "E_ads = E(relaxed slab+adsorbate) - E(relaxed clean slab) - sum_X n_X eps_X, "
    "eps_H = E(H2)/2, eps_O = E(H2O) - E(H2), eps_N = E(N2)/2, eps_C = E(CO) - eps_O "
    "(OC20's gas references; all energies EMT, molecules relaxed in a 12 A box)",
    "odac23_is2re": "E_ads = E(relaxed framework+adsorbates) - E(empty framework) - sum E(gas molecule) "
    "(ODAC23's convention; all energies EMT, gas molecules relaxed in a 12 A box)",
}


@dataclass(frozen=True)
class SubsetSpec:
    name: str
    family: str
    task: str  # s2ef | is2re | denoising
    labels: tuple[str, ...]  # of "energy", "forces"
    energy_kind: str  # total | adsorption | none (no energies)
    functional: str  # the labeling method
    periodic: bool
    role: str  # pretrain | downstream
    paper_samples: float | None  # LaMM Table 2
    description: str


@dataclass(frozen=True)
class FamilySpec:
    name: str
    build: Callable[[SystemRequest, np.random.Generator], SystemResult]
    subsets: tuple[str, ...]
    s2ef: str | None = None  # the subset that takes several frames per relaxation
    is2re: str | None = None
    frames: int = 1  # frames per system of a family without an IS2RE twin (MD snapshots)


_EMT_SLABS = (
    "EMT L-BFGS relaxation (fmax 0.05 eV/A) of an adsorbate on a slab with fixed sub-surface"
)
SUBSETS: tuple[SubsetSpec, ...] = (
    SubsetSpec(
        "oc20_s2ef",
        "oc20",
        "s2ef",
        ("energy", "forces"),
        "total",
        "EMT",
        True,
        "pretrain",
        134e6,
        f"frames along {_EMT_SLABS}: Al/Ni/Cu/Pd/Ag/Pt/Au metals and binary alloys, C/H/N/O adsorbates",
    ),
    SubsetSpec(
        "oc22_s2ef",
        "oc22",
        "s2ef",
        ("energy", "forces"),
        "total",
        "EMT",
        True,
        "pretrain",
        8.2e6,
        f"frames along {_EMT_SLABS}: oxygen-covered (surface-oxide) metal and alloy slabs",
    ),
    SubsetSpec(
        "odac23_s2ef",
        "odac23",
        "s2ef",
        ("energy", "forces"),
        "total",
        "EMT",
        True,
        "pretrain",
        29e6,
        "frames along EMT relaxations of CO2/H2O at open metal sites of fixed pillared-paddlewheel "
        "MOFs (100-300 atoms)",
    ),
    SubsetSpec(
        "transition1x",
        "transition1x",
        "s2ef",
        ("energy", "forces"),
        "total",
        "GFN2-xTB",
        False,
        "pretrain",
        9.5e6,
        "C/H/N/O molecules (<=7 heavy atoms) along H-transfer, bond-stretch and torsion paths",
    ),
    SubsetSpec(
        "qm7x",
        "qm7x",
        "s2ef",
        ("energy", "forces"),
        "total",
        "GFN2-xTB",
        False,
        "pretrain",
        4.2e6,
        "displaced MMFF94 conformers of H/C/N/O/S/Cl molecules with <=7 heavy atoms",
    ),
    SubsetSpec(
        "qmugs",
        "qmugs",
        "s2ef",
        ("energy",),
        "total",
        "GFN2-xTB",
        False,
        "pretrain",
        2.0e6,
        "MMFF94 conformers of drug molecules, energy only",
    ),
    SubsetSpec(
        "pubchem3d",
        "pubchem3d",
        "denoising",
        (),
        "none",
        "none (MMFF94s conformers)",
        False,
        "pretrain",
        94e6,
        "RDKit ETKDG + MMFF94s conformers of drugs and scaffold+substituent molecules, unlabeled",
    ),
    SubsetSpec(
        "oc20_is2re",
        "oc20",
        "is2re",
        ("energy",),
        "adsorption",
        "EMT",
        True,
        "pretrain",
        460e3,
        "initial structures of the oc20 relaxations labeled with the relaxed adsorption energy",
    ),
    SubsetSpec(
        "oc22_is2re",
        "oc22",
        "is2re",
        ("energy",),
        "total",
        "EMT",
        True,
        "pretrain",
        46e3,
        "initial structures of the oc22 relaxations labeled with the relaxed total energy",
    ),
    SubsetSpec(
        "odac23_is2re",
        "odac23",
        "is2re",
        ("energy",),
        "adsorption",
        "EMT",
        True,
        "pretrain",
        132e3,
        "initial structures of the odac23 relaxations labeled with the relaxed adsorption energy",
    ),
    SubsetSpec(
        "hme21",
        "hme21",
        "s2ef",
        ("energy", "forces"),
        "total",
        "VariantEMT",
        True,
        "downstream",
        None,
        "snapshots of 600-2000 K Langevin MD of 2-5-metal alloy cells (fcc, bcc, hcp, melts; 12-32 "
        "atoms), labeled with EMT of a changed parameter set (as PBE is to RPBE)",
    ),
)
SUBSET_NAMES = tuple(s.name for s in SUBSETS)

# Ordered by cost per system, most expensive first, so the pool starts the long jobs early.
FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        "odac23",
        odac_system,
        ("odac23_s2ef", "odac23_is2re"),
        s2ef="odac23_s2ef",
        is2re="odac23_is2re",
    ),
    FamilySpec(
        "oc22", oc22_system, ("oc22_s2ef", "oc22_is2re"), s2ef="oc22_s2ef", is2re="oc22_is2re"
    ),
    FamilySpec("hme21", hme21_md_system, ("hme21",), frames=HME21_SNAPSHOTS),
    FamilySpec(
        "oc20", oc20_system, ("oc20_s2ef", "oc20_is2re"), s2ef="oc20_s2ef", is2re="oc20_is2re"
    ),
    FamilySpec("qmugs", qmugs_system, ("qmugs",)),
    FamilySpec("pubchem3d", pubchem3d_system, ("pubchem3d",)),
    FamilySpec("transition1x", transition1x_system, ("transition1x",)),
    FamilySpec("qm7x", qm7x_system, ("qm7x",)),
)


@dataclass(frozen=True)
class Scale:
    largest: int  # samples of the largest pre-training subset (OC20 S2EF)
    smallest: int  # floor of every pre-training subset
    downstream: int  # samples of hme21


SCALES = {
    "tiny": Scale(largest=10, smallest=3, downstream=16),  # seconds: tests (8 MD trajectories)
    "small": Scale(largest=450, smallest=50, downstream=240),  # make demo: 1-2 minutes on 2 cores
    "medium": Scale(
        largest=6000, smallest=2000, downstream=2000
    ),  # about an hour of labeling on 2 cores
}


def subset_spec(name: str) -> SubsetSpec:
    for spec in SUBSETS:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown demo subset {name!r}; expected one of {', '.join(SUBSET_NAMES)}")


def target_sizes(scale: str) -> dict[str, int]:
    """Samples per subset at `scale` (see the module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    sizes = SCALES[scale]
    largest_paper = max(s.paper_samples for s in SUBSETS if s.paper_samples)
    targets = {}
    for spec in SUBSETS:
        if spec.role == "downstream":
            targets[spec.name] = sizes.downstream
        else:
            ratio = (spec.paper_samples / largest_paper) ** COMPRESSION
            targets[spec.name] = max(sizes.smallest, int(round(sizes.largest * ratio)))
    return targets


def frames_per_system(family: FamilySpec, scale: str) -> int:
    """S2EF frames taken from each relaxation of a family (1 for single-structure families).

    Fixed per (family, scale), independent of which subsets a run writes, so a store's content
    never depends on whether its sibling subset was requested too."""
    if family.s2ef is None or family.is2re is None:
        return family.frames
    targets = target_sizes(scale)
    return math.ceil(targets[family.s2ef] / targets[family.is2re])
