"""Small files in each real release format, with the real field names and units (DATASETS.md).

Shared by test_readers.py and test_convert.py. Labels come from ASE's EMT (slabs) so values are
physical; each builder returns what it wrote so tests can compare exactly.
"""

from __future__ import annotations

import gzip
import lzma
import pickle
from pathlib import Path

import h5py
import lmdb
import numpy as np
import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.units import Hartree
from rdkit import Chem
from rdkit.Chem import AllChem
from torch_geometric.data import Data


# --- slabs like OC20 ----------------------------------------------------------------------------
def labeled_slab(seed: int, adsorbate: str = "CO") -> Atoms:
    """A Cu(111) 2x2x3 slab with an adsorbate, bottom layer fixed, OC20 tags, EMT labels."""
    rng = np.random.default_rng(seed)
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, molecule(adsorbate), 1.9, "ontop")
    slab.positions += rng.normal(0.0, 0.03, slab.positions.shape)
    slab.set_tags([0] * 4 + [1] * 8 + [2] * (len(slab) - 12))
    slab.set_constraint(FixAtoms(indices=range(4)))
    slab.calc = EMT()
    slab.get_potential_energy()
    return slab


def fairchem_data(
    atoms: Atoms, sid: int, fid: int, *, naming: str = "legacy", relaxed_energy: float | None = None
) -> Data:
    """A Data object as fairchem's AtomsToGraphs writes it (atomic numbers as floats, float32
    positions)."""
    fields = {
        "pos": torch.tensor(atoms.positions, dtype=torch.float32),
        "cell": torch.tensor(atoms.cell.array, dtype=torch.float32).view(1, 3, 3),
        "atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.float32),
        "natoms": len(atoms),
        "tags": torch.tensor(atoms.get_tags(), dtype=torch.long),
        "fixed": torch.tensor([1.0 if i < 4 else 0.0 for i in range(len(atoms))]),
        "sid": sid,
        "fid": fid,
    }
    energy = atoms.get_potential_energy()
    forces = torch.tensor(atoms.get_forces(apply_constraint=False), dtype=torch.float32)
    if naming == "legacy":
        fields.update(y=energy, force=forces)
    elif naming == "new":
        fields.update(energy=energy, forces=forces)
    elif naming == "is2re":
        fields.update(y_relaxed=relaxed_energy, y_init=energy, pos_relaxed=fields["pos"] + 0.1)
    elif naming == "odac":
        fields.update(y=energy + 1750.0, raw_y=energy, force=forces)
    return Data(**fields)


def pre_pyg2(data: Data) -> Data:
    """The same fields in a Data object laid out as before PyG 2.0 (fields in __dict__, no
    _store)."""
    old = Data.__new__(Data)
    old.__dict__.update({key: value for key, value in data.to_dict().items()})
    return old


def write_fairchem_lmdb(path: Path, objects: list, *, length_key: bool = True) -> Path:
    """Keys f"{i}" -> pickled object, plus the pickled `length` (fairchem preprocess_ef.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), subdir=False, map_size=2**30, meminit=False)
    with env.begin(write=True) as txn:
        for index, obj in enumerate(objects):
            txn.put(f"{index}".encode("ascii"), pickle.dumps(obj, protocol=-1))
        if length_key:
            txn.put(b"length", pickle.dumps(len(objects), protocol=-1))
    env.close()
    return path


# --- raw OC20 S2EF extxyz + txt -----------------------------------------------------------------
def oc20_extxyz_frame(atoms: Atoms) -> str:
    """One frame with OC20's header: move_mask, tags, forces, energy, free_energy, pbc."""
    moving = np.ones(len(atoms), dtype=bool)
    moving[atoms.constraints[0].index] = False
    lattice = " ".join(f"{x:.8f}" for x in atoms.cell.array.T.reshape(-1))
    energy = atoms.get_potential_energy()
    lines = [
        f"{len(atoms)}",
        f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:move_mask:L:1:tags:I:1:forces:R:3 '
        f'energy={energy:.8f} free_energy={energy - 0.01:.8f} pbc="T T T"',
    ]
    forces = atoms.get_forces(apply_constraint=False)
    for symbol, pos, move, tag, force in zip(
        atoms.get_chemical_symbols(), atoms.positions, moving, atoms.get_tags(), forces, strict=True
    ):
        lines.append(
            f"{symbol} {pos[0]:.8f} {pos[1]:.8f} {pos[2]:.8f} {'T' if move else 'F'} {tag} "
            f"{force[0]:.8f} {force[1]:.8f} {force[2]:.8f}"
        )
    return "\n".join(lines) + "\n"


def write_oc20_pair(
    directory: Path, stem: str, frames: list[tuple[str, int, Atoms]], reference: float = -50.0
) -> None:
    """`<stem>.extxyz.xz` and `<stem>.txt.xz` (lines `random<sid>,frame<fid>,<reference>`)."""
    directory.mkdir(parents=True, exist_ok=True)
    with lzma.open(directory / f"{stem}.extxyz.xz", "wt") as handle:
        handle.writelines(oc20_extxyz_frame(atoms) for _, _, atoms in frames)
    with lzma.open(directory / f"{stem}.txt.xz", "wt") as handle:
        handle.writelines(f"{system},frame{fid},{reference:.6f}\n" for system, fid, _ in frames)


# --- Transition1x -------------------------------------------------------------------------------
def write_transition1x(path: Path, reactions: dict[str, dict[str, np.ndarray]]) -> Path:
    """/data/<formula>/<rxn>/ plus reactant/product/transition_state subgroups and a /train copy."""
    with h5py.File(path, "w") as handle:
        for split in ("data", "train"):
            for key, rxn in reactions.items():
                formula, name = key.split("/")
                group = handle.require_group(f"{split}/{formula}").create_group(name)
                group["atomic_numbers"] = rxn["numbers"]
                group["positions"] = rxn["positions"]
                group["wB97x_6-31G(d).energy"] = rxn["energy"]
                group["wB97x_6-31G(d).forces"] = rxn["forces"]
                group["wB97x_6-31G(d).atomization_energy"] = rxn["energy"] - 100.0
                for sub, frame in (("reactant", 0), ("transition_state", 1), ("product", -1)):
                    endpoint = group.create_group(sub)
                    endpoint["atomic_numbers"] = rxn["numbers"]
                    endpoint["positions"] = rxn["positions"][
                        frame : frame + 1 if frame != -1 else None
                    ]
                    endpoint["wB97x_6-31G(d).energy"] = rxn["energy"][
                        frame : frame + 1 if frame != -1 else None
                    ]
                    endpoint["wB97x_6-31G(d).forces"] = rxn["forces"][
                        frame : frame + 1 if frame != -1 else None
                    ]
    return path


def reaction(seed: int, frames: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = molecule("H2CO").positions  # formaldehyde: C, O, H, H
    return {
        "numbers": np.array([8, 6, 1, 1], dtype=np.int16),
        "positions": base[None] + rng.normal(0, 0.05, (frames, 4, 3)),
        "energy": -3100.0 + rng.normal(0, 0.3, frames),
        "forces": rng.normal(0, 0.5, (frames, 4, 3)).astype(np.float32),
    }


# --- QM7-X --------------------------------------------------------------------------------------
def write_qm7x(
    path: Path, molecules: dict[str, dict[str, dict[str, np.ndarray]]], *, xz: bool = False
) -> Path:
    """f[idmol][idconf] with atNUM, atXYZ, ePBE0+MBD [1], totFOR and a few other QM7-X keys."""
    hdf5 = path.with_suffix(".hdf5") if xz else path
    with h5py.File(hdf5, "w") as handle:
        for idmol, conformers in molecules.items():
            for idconf, conf in conformers.items():
                group = handle.create_group(f"{idmol}/{idconf}")
                group["atNUM"] = conf["numbers"]
                group["atXYZ"] = conf["positions"]
                group["ePBE0+MBD"] = np.array([conf["energy"]])
                group["totFOR"] = conf["forces"]
                group["eAT"] = np.array([conf["energy"] + 40.0])
                group["pbe0FOR"] = conf["forces"] * 0.9
    if xz:
        path.write_bytes(lzma.compress(hdf5.read_bytes()))
        hdf5.unlink()
    return path


def qm7x_conformer(seed: int, n_atoms: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = molecule("CH4").positions[:n_atoms]
    return {
        "numbers": np.array([6, 1, 1, 1, 1][:n_atoms], dtype=np.int32),
        "positions": base + rng.normal(0, 0.02, base.shape),
        "energy": -1100.0 + rng.normal(0, 0.1),
        "forces": rng.normal(0, 0.3, base.shape),
    }


# --- SDF: QMugs and PubChem3D -------------------------------------------------------------------
def conformer_block(smiles: str, seed: int, props: dict[str, str]) -> tuple[str, Chem.Mol]:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    for key, value in props.items():
        mol.SetProp(key, value)
    block = Chem.MolToMolBlock(mol)
    data = "".join(f">  <{key}>\n{value}\n\n" for key, value in props.items())
    return f"{block}{data}$$$$\n", mol


def write_qmugs_tree(
    root: Path, molecules: dict[str, list[tuple[str, float]]]
) -> dict[str, Chem.Mol]:
    """structures/CHEMBL<id>/conf_XX.sdf with DFT:TOTAL_ENERGY in Hartree."""
    written = {}
    for chembl, conformers in molecules.items():
        directory = root / "structures" / chembl
        directory.mkdir(parents=True, exist_ok=True)
        for index, (smiles, hartree) in enumerate(conformers):
            props = {
                "GFN2:TOTAL_ENERGY": f"{hartree + 0.5:.10f}",
                "DFT:TOTAL_ENERGY": f"{hartree:.10f}",
                "CHEMBL_ID": chembl,
            }
            block, mol = conformer_block(smiles, index + 1, props)
            (directory / f"conf_{index:02d}.sdf").write_text(block)
            written[f"{chembl}/conf_{index:02d}"] = mol
    return written


def write_pubchem_sdf_gz(path: Path, compounds: list[tuple[int, str]]) -> list[Chem.Mol]:
    """`<first>_<last>.sdf.gz` with PubChem's CID, conformer id and MMFF94 energy tags."""
    blocks, mols = [], []
    for cid, smiles in compounds:
        props = {
            "PUBCHEM_COMPOUND_CID": str(cid),
            "PUBCHEM_CONFORMER_ID": f"{cid:08X}00000001",
            "PUBCHEM_MMFF94_ENERGY": "12.5",
        }
        block, mol = conformer_block(smiles, cid, props)
        blocks.append(block)
        mols.append(mol)
    with gzip.open(path, "wt") as handle:
        handle.write("".join(blocks))
    return mols


HARTREE = Hartree
