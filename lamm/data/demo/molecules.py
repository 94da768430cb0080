"""QM7-X-, QMugs- and PubChem3D-like molecules: RDKit conformers of real molecules, GFN2-xTB labels.

- QM7-X-like: molecules of at most 7 heavy atoms (H C N O S Cl), an MMFF94 minimum of a random
  ETKDG conformer, displaced off equilibrium (QM7-X displaces along normal modes; here every
  atom moves by Gaussian noise of a random amplitude, 0.01-0.05 A); GFN2-xTB energy and forces.
- QMugs-like: drug molecules (ChEMBL-like, ~50 atoms), an MMFF94 conformer (QMugs: GFN2-xTB
  conformers from CREST); GFN2-xTB energy only, as QMugs has no forces.
- PubChem3D-like: real drugs and molecules built from real scaffolds and substituents, an ETKDG
  conformer optimized with MMFF94s (PubChem3D's force field); no labels (denoising).
Molecules are drawn with probability growing with their atom count, so the mean size follows
Table 2 (QM7-X 17 atoms, QMugs 55, PubChem3D 46) instead of the lists' many small entries.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lamm.data.demo.labelers import DemoFailure, xtb_energy_forces
from lamm.data.demo.smiles import DRUGS, SCAFFOLDS, SMALL_CHNOSCL, SUBSTITUENTS
from lamm.data.demo.systems import SystemRequest, SystemResult
from lamm.data.record import StructureRecord

MAX_HEAVY_ATOMS = 50  # PubChem3D's limit for conformer generation


@lru_cache(maxsize=None)
def atom_count_weights(smiles: tuple[str, ...], power: float) -> np.ndarray:
    """Sampling weights proportional to (atoms incl. H) ** power."""
    from rdkit import Chem

    counts = np.array(
        [Chem.AddHs(Chem.MolFromSmiles(s)).GetNumAtoms() for s in smiles], dtype=np.float64
    )
    weights = counts**power
    return weights / weights.sum()


def pick(smiles: tuple[str, ...], rng: np.random.Generator, power: float) -> str:
    return smiles[int(rng.choice(len(smiles), p=atom_count_weights(smiles, power)))]


def conformer(
    smiles: str, rng: np.random.Generator, *, force_field: str | None, max_iterations: int = 500
):
    """(RDKit molecule with H, numbers [n], positions [n, 3]) of an ETKDG conformer, optionally
    minimized with MMFF94 or MMFF94s. Raises DemoFailure when RDKit cannot embed or type it."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    molecule = Chem.AddHs(Chem.MolFromSmiles(smiles))
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = int(rng.integers(2**31 - 1))
    if AllChem.EmbedMolecule(molecule, parameters) != 0:
        raise DemoFailure("RDKit ETKDG embedding failed", smiles)
    if force_field is not None:
        properties = AllChem.MMFFGetMoleculeProperties(molecule, mmffVariant=force_field)
        if properties is None:
            raise DemoFailure(f"{force_field} parameters missing", smiles)
        AllChem.MMFFGetMoleculeForceField(molecule, properties).Minimize(maxIts=max_iterations)
    numbers = np.array([atom.GetAtomicNum() for atom in molecule.GetAtoms()], dtype=np.int64)
    return molecule, numbers, np.array(molecule.GetConformer().GetPositions(), dtype=np.float64)


def molecule_record(
    numbers: np.ndarray,
    positions: np.ndarray,
    source_id: str,
    energy: float | None = None,
    forces: np.ndarray | None = None,
) -> StructureRecord:
    """A non-periodic record (zero cell, no pbc)."""
    return StructureRecord(
        atomic_numbers=numbers,
        positions=positions,
        cell=np.zeros((3, 3)),
        pbc=np.zeros(3, dtype=bool),
        energy=energy,
        forces=forces,
        source_id=source_id,
    )


def qm7x_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    smiles = pick(SMALL_CHNOSCL, rng, power=3.0)
    _, numbers, positions = conformer(smiles, rng, force_field="MMFF94")
    amplitude = rng.uniform(0.01, 0.05)
    displacement = rng.normal(0.0, amplitude, size=positions.shape)
    positions = positions + displacement - displacement.mean(axis=0)
    energy, forces = xtb_energy_forces(numbers, positions, method="GFN2-xTB")
    source = f"qm7x/{request.index:06d}/{smiles}/d{amplitude:.3f}"
    return SystemResult(
        records={"qm7x": [molecule_record(numbers, positions, source, energy, forces)]}
    )


def qmugs_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    smiles = pick(DRUGS, rng, power=2.0)
    _, numbers, positions = conformer(smiles, rng, force_field="MMFF94", max_iterations=100)
    energy, _ = xtb_energy_forces(numbers, positions, method="GFN2-xTB", forces=False)
    source = f"qmugs/{request.index:06d}/{smiles}"
    return SystemResult(records={"qmugs": [molecule_record(numbers, positions, source, energy)]})


def decorated_molecule(rng: np.random.Generator) -> str:
    """A new valid molecule: one or two scaffolds (joined by a bond) carrying 2-6 substituents,
    each bonded to a random ring atom that still has a hydrogen."""
    from rdkit import Chem

    for _ in range(50):
        molecule = Chem.RWMol(Chem.MolFromSmiles(str(rng.choice(SCAFFOLDS))))
        parts = [str(rng.choice(SUBSTITUENTS)) for _ in range(int(rng.integers(2, 7)))]
        if rng.random() < 0.5:
            parts.insert(0, str(rng.choice(SCAFFOLDS)))
        try:
            for part in parts:
                sites = [
                    a.GetIdx()
                    for a in molecule.GetAtoms()
                    if a.GetTotalNumHs() > 0 and a.GetSymbol() in "CN"
                ]
                if not sites:
                    break
                site = int(rng.choice(sites))
                fragment = Chem.MolFromSmiles(part)
                offset = molecule.GetNumAtoms()
                molecule.InsertMol(fragment)
                anchor = offset + (
                    int(
                        rng.choice(
                            [a.GetIdx() for a in fragment.GetAtoms() if a.GetTotalNumHs() > 0]
                        )
                    )
                    if part in SCAFFOLDS
                    else 0
                )
                molecule.AddBond(site, anchor, Chem.BondType.SINGLE)
                for index in (
                    site,
                    anchor,
                ):  # an aromatic [nH] loses its explicit H when substituted
                    atom = molecule.GetAtomWithIdx(index)
                    atom.SetNumExplicitHs(max(0, atom.GetNumExplicitHs() - 1))
                Chem.SanitizeMol(molecule)
        except (Chem.rdchem.KekulizeException, Chem.rdchem.AtomValenceException, ValueError):
            continue
        smiles = Chem.MolToSmiles(molecule)
        if Chem.MolFromSmiles(smiles) is not None and molecule.GetNumAtoms() <= MAX_HEAVY_ATOMS:
            return smiles
    raise DemoFailure("no valid decorated molecule in 50 tries")


def pubchem3d_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    smiles = pick(DRUGS, rng, power=1.0) if rng.random() < 0.25 else decorated_molecule(rng)
    _, numbers, positions = conformer(smiles, rng, force_field="MMFF94s", max_iterations=200)
    source = f"pubchem3d/{request.index:06d}/{smiles}"
    return SystemResult(records={"pubchem3d": [molecule_record(numbers, positions, source)]})
