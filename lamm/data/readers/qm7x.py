"""QM7-X HDF5 files (`1000.hdf5` ... `8000.hdf5`, shipped as LZMA `.xz`).

Layout (DATASETS.md section 6, schnetpack `datasets/qm7x.py`): `f[idmol][idconf]` with idconf
like `Geom-m<r>-i<s>-c<t>-<u>` (u = `opt` or 1..100); per conformer `atNUM` [N], `atXYZ` [N, 3]
(Angstrom), `ePBE0+MBD` (total energy, eV; stored as a 1-element array) and `totFOR` [N, 3]
(total PBE0+MBD forces, eV/A). The split group is the molecule (idmol), so its conformers and
isomers stay together.

An `.xz` input is decompressed to a temporary file first (HDF5 needs random access), in
`scratch_dir` (default: the system temp dir) and deleted afterwards. In a directory, a `.xz`
is read only when no `.hdf5` of the same name sits beside it (`lamm data fetch` keeps both).
"""

from __future__ import annotations

import contextlib
import lzma
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from lamm.data.readers import CorruptInputError, SourceItem, input_files, reading
from lamm.data.record import StructureRecord


def qm7x_files(path: str | Path) -> list[Path]:
    files = input_files(path, (".hdf5", ".h5", ".xz"))
    plain = {f.name.rsplit(".", 1)[0] for f in files if not f.name.endswith(".xz")}
    return [
        f for f in files if not f.name.endswith(".xz") or f.name[:-3].rsplit(".", 1)[0] not in plain
    ]


@contextlib.contextmanager
def decompressed(path: Path, scratch_dir: Path | None) -> Iterator[Path]:
    """`path` itself, or a temporary decompressed copy of an `.xz` file."""
    if not path.name.endswith(".xz"):
        yield path
        return
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix="lamm-qm7x-") as tmp:
        target = Path(tmp) / (path.name[:-3] + ".hdf5")
        with reading(path, "xz"), lzma.open(path) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, length=2**22)
        yield target


def read_qm7x(
    path: str | Path,
    *,
    energy_field: str = "ePBE0+MBD",
    forces_field: str = "totFOR",
    scratch_dir: str | Path | None = None,
) -> Iterator[SourceItem]:
    """Every conformer of a QM7-X file (`.hdf5` or `.xz`) or of the files of a directory."""
    scratch = None if scratch_dir is None else Path(scratch_dir)
    for file in qm7x_files(path):
        with decompressed(file, scratch) as hdf5, reading(file), h5py.File(hdf5, "r") as handle:
            for molecule, conformers in handle.items():
                for conformer, group in conformers.items():
                    with reading(file, f"/{molecule}/{conformer}"):
                        numbers = np.asarray(group["atNUM"][()], dtype=np.int64).reshape(-1)
                        positions = np.asarray(group["atXYZ"][()], dtype=np.float64)
                        energy = np.asarray(group[energy_field][()], dtype=np.float64).reshape(-1)
                        forces = np.asarray(group[forces_field][()], dtype=np.float64)
                    if energy.size != 1:
                        raise CorruptInputError(
                            f"{file} (/{molecule}/{conformer}): {energy_field} has "
                            f"{energy.size} values, expected 1"
                        )
                    record = StructureRecord(
                        atomic_numbers=numbers,
                        positions=positions,
                        cell=np.zeros((3, 3)),
                        pbc=np.zeros(3, dtype=bool),
                        energy=float(energy[0]),
                        forces=forces,
                        source_id=str(conformer),
                    )
                    yield SourceItem(record, str(molecule))
