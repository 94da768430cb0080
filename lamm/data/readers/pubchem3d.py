"""PubChem3D SD files (`<first>_<last>.sdf.gz`, 25,000 CIDs each): MMFF94s conformers, no labels.

Facts (DATASETS.md section 8): data fields `PUBCHEM_COMPOUND_CID`, `PUBCHEM_CONFORMER_ID`
(`PUBCHEM_MMFF94_ENERGY` is a force-field energy and is not used as a label). The split group
is the compound (CID), so the conformers of one compound (10_conf_per_cmpd) stay together.
Files are streamed; a truncated `.gz` fails with its name instead of ending early.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from lamm.data.readers import UNPARSABLE_RECORD, SourceItem, input_files, reading
from lamm.data.readers.sdf import iter_sdf_blocks, mol_to_record, parse_sdf_block


def _open(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_pubchem3d(path: str | Path) -> Iterator[SourceItem]:
    """Every conformer of an `.sdf`/`.sdf.gz` file or of such files in a directory."""
    for file in input_files(path, (".sdf", ".sdf.gz")):
        with reading(file), _open(file) as handle:
            for index, block in enumerate(iter_sdf_blocks(handle)):
                mol = parse_sdf_block(block)
                if mol is None:
                    yield SourceItem(None, f"{file.name}:{index}", UNPARSABLE_RECORD)
                    continue
                cid = (
                    mol.GetProp("PUBCHEM_COMPOUND_CID").strip()
                    if mol.HasProp("PUBCHEM_COMPOUND_CID")
                    else ""
                )
                group = f"CID{cid}" if cid else f"{file.name}:{index}"
                conformer = (
                    mol.GetProp("PUBCHEM_CONFORMER_ID").strip()
                    if mol.HasProp("PUBCHEM_CONFORMER_ID")
                    else ""
                )
                source_id = f"{group}/{conformer}" if conformer else group
                yield SourceItem(mol_to_record(mol, None, source_id), group)
