"""The QMugs `structures/` tree: `structures/CHEMBL<id>/conf_XX.sdf`, one conformer per file.

Facts (DATASETS.md section 7, openqdc `qmugs.py`): the SDF property `DFT:TOTAL_ENERGY` is the
wB97X-D/def2-SVP total energy in Hartree, converted here to eV with `ase.units.Hartree`. QMugs
has no DFT forces, so records carry an energy only. The split group is the ChEMBL id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ase.units import Hartree

from lamm.data.readers import UNPARSABLE_RECORD, SourceItem, reading
from lamm.data.readers.sdf import iter_sdf_blocks, mol_to_record, parse_sdf_block

ENERGY = "DFT:TOTAL_ENERGY"


def molecule_dirs(path: str | Path) -> list[Path]:
    """The CHEMBL<id> directories under `path` (the `structures` dir or its parent)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"input {path} is not a directory (expected the QMugs structures/ tree)"
        )
    if (path / "structures").is_dir():
        path = path / "structures"
    dirs = sorted(p for p in path.iterdir() if p.is_dir())
    if not dirs:
        raise FileNotFoundError(f"no molecule directories (CHEMBL<id>/) in {path}")
    return dirs


def read_qmugs(path: str | Path, *, energy_field: str = ENERGY) -> Iterator[SourceItem]:
    """Every conformer of the tree, molecules and conformers in sorted order."""
    for directory in molecule_dirs(path):
        chembl = directory.name
        for file in sorted(directory.glob("*.sdf")):
            source_id = f"{chembl}/{file.stem}"
            with reading(file), open(file, encoding="utf-8") as handle:
                blocks = list(iter_sdf_blocks(handle))
            mol = parse_sdf_block(blocks[0]) if blocks else None
            if mol is None:
                yield SourceItem(None, chembl, UNPARSABLE_RECORD)
                continue
            energy = None
            if mol.HasProp(energy_field):
                try:
                    energy = float(mol.GetProp(energy_field)) * Hartree
                except ValueError:
                    yield SourceItem(None, chembl, UNPARSABLE_RECORD)
                    continue
            yield SourceItem(mol_to_record(mol, energy, source_id), chembl)
