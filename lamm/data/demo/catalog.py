"""The demo subsets, the families of systems that produce them, and their sizes per scale, for
each of the two label sets:

- `light` (the default and `make demo`'s): EMT for the periodic subsets (7 metals and toy
  C/H/N/O parameters), GFN2-xTB for molecules, a parameter variant of EMT for hme21. Seconds
  to minutes on a laptop, but the periodic physics is a toy.
- `universal`: universal potentials trained on real DFT label the periodic subsets across the
  periodic table (`universal.py`, `crystals.py`), heterogeneous as the paper's subsets are:
  SevenNet-0 (PBE/PBE+U) for OC20, CHGNet 0.3.0 (PBE+U) for OC22 and for an OMat24-like bulk
  subset (rattled, strained, MD; with stress), CHGNet's r2SCAN model for ODAC23; molecules keep
  GFN2-xTB; hme21 is labeled by SevenNet-l3i5, which no pre-training subset uses. About an
  hour of labeling on 2 cores at the `mini` scale; needs `pip install .[labelers]`.

Light sizes keep LaMM Table 2's ordering in compressed proportions:
    n_i = max(smallest, round(largest * (N_i / N_OC20)^0.35))
with N_i the paper's sample counts, so OC20 S2EF stays the largest, PubChem3D second and the
IS2RE subsets the smallest, while the smallest keeps enough samples to learn from.

Subsets that come from the same relaxations (OC20, OC22, ODAC23: S2EF-T frames and IS2RE
initial structures) share a family; its S2EF subset takes `ceil(n_s2ef / n_is2re)` frames per
relaxation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from lamm.data.demo.alloy_md import hme21_md_system, hme21_universal_system
from lamm.data.demo.bulk import omat24_system
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
    "odac23_is2re": "E_ads = E(relaxed framework+adsorbates) - E(empty framework) "
    "- sum E(gas molecule) "
    "(ODAC23's convention; all energies EMT, gas molecules relaxed in a 12 A box)",
}


@dataclass(frozen=True)
class SubsetSpec:
    name: str
    family: str
    task: str  # s2ef | is2re | denoising
    labels: tuple[str, ...]  # of "energy", "forces"
    energy_kind: str  # total | adsorption | none (no energies)
    functional: str  # the labeling method, in words
    periodic: bool
    role: str  # pretrain | downstream
    paper_samples: float | None  # LaMM Table 2 (omat24: the OMat24 release)
    description: str
    labeler: str = ""  # the labeler's name: emt, variant-emt, gfn2-xtb, none, or universal.LABELERS


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
        f"frames along {_EMT_SLABS}: Al/Ni/Cu/Pd/Ag/Pt/Au metals and binary alloys, "
        "C/H/N/O adsorbates",
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
_LIGHT_LABELERS = {"EMT": "emt", "GFN2-xTB": "gfn2-xtb", "VariantEMT": "variant-emt"}
SUBSETS = tuple(
    dataclasses.replace(s, labeler=_LIGHT_LABELERS.get(s.functional, "none")) for s in SUBSETS
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
    "medium": Scale(largest=6000, smallest=2000, downstream=2000),  # ~1 h of labeling, 2 cores
}

# --- the universal label set -------------------------------------------------------------------

OMAT24_FRAMES = 4  # snapshots per crystal (one MD run or four rattled cells)
_UNIVERSAL = {  # subset -> (labeler, description)
    "oc20_s2ef": ("sevennet-0", "frames along SevenNet-0 L-BFGS relaxations (fmax 0.05 eV/A, "
                  "<= 40 steps) of C/H/N/O adsorbates on slabs of metals, alloys, intermetallics "
                  "and compounds across the periodic table, sub-surface fixed"),
    "oc22_s2ef": ("chgnet-0.3.0", "frames along CHGNet 0.3.0 relaxations of adsorbates on slabs of "
                  "binary and perovskite oxides"),
    "odac23_s2ef": ("chgnet-r2scan", "frames along CHGNet-r2SCAN relaxations of CO2/H2O at open "
                    "metal sites of fixed pillared-paddlewheel MOFs (Cu/Ni/Zn/Co/Fe/Cr/Mo/Ru)"),
    "oc20_is2re": ("sevennet-0", "initial structures of the oc20 relaxations labeled with the "
                   "relaxed adsorption energy (SevenNet-0)"),
    "oc22_is2re": ("chgnet-0.3.0", "initial structures of the oc22 relaxations labeled with the "
                   "relaxed total energy (CHGNet 0.3.0)"),
    "odac23_is2re": ("chgnet-r2scan", "initial structures of the odac23 relaxations labeled with "
                     "the relaxed adsorption energy (CHGNet-r2SCAN)"),
    "hme21": ("sevennet-l3i5", "snapshots of 600-2000 K Langevin MD (driven by CHGNet 0.3.0) of "
              "2-5-metal alloy cells of 22 metals (fcc, bcc, hcp, melts; 12-32 atoms), labeled by "
              "SevenNet-l3i5 (energy, forces, stress)"),
}  # fmt: skip
OMAT24 = SubsetSpec(
    "omat24", "omat24", "s2ef", ("energy", "forces", "stress"), "total", "CHGNet 0.3.0 (PBE/PBE+U)",
    True, "pretrain", 110e6,
    "OMat24-like bulk: crystals of 65 elements (metals, alloys, intermetallics, oxides, nitrides, "
    "carbides, chalcogenides, halides, semiconductors) at CHGNet's equilibrium volume, strained "
    "+-10% in volume, with point defects, rattled at 300-2000 K or in Langevin MD, or scanned "
    "over 0.6-2.9 times the volume (equations of state); 8-64 atoms",
    labeler="chgnet-0.3.0",
)  # fmt: skip


def _universal_spec(spec: SubsetSpec) -> SubsetSpec:
    if spec.name not in _UNIVERSAL:
        return spec  # the molecules keep GFN2-xTB
    name, description = _UNIVERSAL[spec.name]
    labels = (*spec.labels, "stress") if spec.name == "hme21" else spec.labels
    return dataclasses.replace(
        spec, functional=name, description=description, labeler=name, labels=labels
    )


UNIVERSAL_SUBSETS = (OMAT24, *(_universal_spec(s) for s in SUBSETS))
UNIVERSAL_FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("odac23", partial(odac_system, labeler="chgnet-r2scan"),
               ("odac23_s2ef", "odac23_is2re"), s2ef="odac23_s2ef", is2re="odac23_is2re"),
    FamilySpec("oc20", partial(oc20_system, labeler="sevennet-0"),
               ("oc20_s2ef", "oc20_is2re"), s2ef="oc20_s2ef", is2re="oc20_is2re"),
    FamilySpec("oc22", partial(oc22_system, labeler="chgnet-0.3.0"),
               ("oc22_s2ef", "oc22_is2re"), s2ef="oc22_s2ef", is2re="oc22_is2re"),
    FamilySpec("hme21", hme21_universal_system, ("hme21",), frames=HME21_SNAPSHOTS),
    FamilySpec("omat24", omat24_system, ("omat24",), frames=OMAT24_FRAMES),
    *(f for f in FAMILIES if f.name in ("qmugs", "pubchem3d", "transition1x", "qm7x")),
)  # fmt: skip
# Sizes chosen by labeling cost, not by the light formula: a universal-potential relaxation
# costs 10-100x EMT's, so the relaxation families (OC20/OC22/ODAC23, whose IS2RE twin sets
# the number of relaxations) are smaller and the bulk subset, one label per sample, is the
# largest. Orders within the paper's subsets follow Table 2.
UNIVERSAL_TARGETS = {
    "tiny": {"omat24": 8, "oc20_s2ef": 6, "oc22_s2ef": 4, "odac23_s2ef": 4, "transition1x": 4,
             "qm7x": 4, "qmugs": 3, "pubchem3d": 6, "oc20_is2re": 2, "oc22_is2re": 2,
             "odac23_is2re": 2, "hme21": 16},
    # config/universal-mini.yaml's labels in ~50 min on 2 cores, so the run fits in 2 hours:
    # half of what labeled for 90 min at first (8000 bulk, 1200/40 OC20, 600/25 OC22, 300/15
    # ODAC23, molecules 1200/1000/800/2000, hme21 300), the relaxations' frames per path kept.
    "mini": {"omat24": 4000, "oc20_s2ef": 800, "oc22_s2ef": 400, "odac23_s2ef": 200,
             "transition1x": 800, "qm7x": 600, "qmugs": 400, "pubchem3d": 1500,
             "oc20_is2re": 20, "oc22_is2re": 16, "odac23_is2re": 8, "hme21": 240},
}  # fmt: skip


@dataclass(frozen=True)
class LabelSet:
    name: str
    subsets: tuple[SubsetSpec, ...]
    families: tuple[FamilySpec, ...]
    scales: tuple[str, ...]
    version: int  # bump when its generators change: stores of other versions are rebuilt


LABEL_SETS = {
    "light": LabelSet("light", SUBSETS, FAMILIES, tuple(SCALES), 3),
    "universal": LabelSet(
        "universal", UNIVERSAL_SUBSETS, UNIVERSAL_FAMILIES, tuple(UNIVERSAL_TARGETS), 2
    ),
}
ALL_SUBSET_NAMES = tuple(dict.fromkeys(s.name for ls in LABEL_SETS.values() for s in ls.subsets))


def label_set(labels: str) -> LabelSet:
    if labels not in LABEL_SETS:
        raise ValueError(f"unknown label set {labels!r}; expected one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[labels]


def subset_spec(name: str, labels: str = "light") -> SubsetSpec:
    subsets = label_set(labels).subsets
    for spec in subsets:
        if spec.name == name:
            return spec
    names = ", ".join(s.name for s in subsets)
    raise ValueError(f"unknown demo subset {name!r} for {labels} labels; expected one of {names}")


def target_sizes(scale: str, labels: str = "light") -> dict[str, int]:
    """Samples per subset at `scale` (see the module docstring)."""
    chosen = label_set(labels)
    if scale not in chosen.scales:
        raise ValueError(
            f"unknown scale {scale!r} for {labels} labels; "
            f"expected one of {', '.join(chosen.scales)}"
        )
    if labels == "universal":
        return dict(UNIVERSAL_TARGETS[scale])
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


def frames_per_system(family: FamilySpec, scale: str, labels: str = "light") -> int:
    """S2EF frames taken from each relaxation of a family (1 for single-structure families).

    Fixed per (family, scale), independent of which subsets a run writes, so a store's content
    never depends on whether its sibling subset was requested too."""
    if family.s2ef is None or family.is2re is None:
        return family.frames
    targets = target_sizes(scale, labels)
    return math.ceil(targets[family.s2ef] / targets[family.is2re])
