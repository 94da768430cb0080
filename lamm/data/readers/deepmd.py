"""deepmd-kit's npy systems (the DPA-2 ecosystem's training format, as dpdata writes it).

A system is a folder with `type.raw` (the type index of each atom, whitespace separated),
`type_map.raw` (the element of each type, one per line) and frame sets `set.*/` holding
`coord.npy` [frames, 3 natoms], `box.npy` [frames, 9] (absent, or ignored, when the system has a
`nopbc` file), `energy.npy` [frames] and `force.npy` [frames, 3 natoms]. dpdata's "mixed type"
systems keep per-frame types in `set.*/real_atom_types.npy` [frames, natoms]. A set without the
npy of a declared label yields its frames without that label, which the checks then skip.
A set's `virial.npy` [frames, 9] (eV, deepmd's virial W = -V stress) becomes the stress
-W / V in ASE's sign, for periodic systems.

`--input` is a system folder, or any folder above systems (searched recursively for `type.raw`).
The group of a frame is the frame, or with `group_by: file` its whole system.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from lamm.data.readers import CorruptInputError, SourceItem, reading
from lamm.data.record import StructureRecord
from lamm.data.units import Units


def find_systems(path: str | Path) -> list[Path]:
    """The system folders at or below `path`, sorted."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if (path / "type.raw").is_file():
        return [path]
    systems = sorted(p.parent for p in path.rglob("type.raw"))
    if not systems:
        raise FileNotFoundError(
            f"no deepmd system (a folder with type.raw and set.*/) at or below {path}"
        )
    return systems


def _type_numbers(system: Path) -> np.ndarray:
    """Atomic number of each type index, from type_map.raw."""
    type_map = system / "type_map.raw"
    if not type_map.is_file():
        raise CorruptInputError(
            f"{system}: no type_map.raw; write the element of each type there, one per line "
            "(e.g. O then H)"
        )
    names = type_map.read_text().split()
    unknown = [name for name in names if name not in atomic_numbers]
    if unknown:
        raise CorruptInputError(f"{type_map}: {unknown} are not element symbols")
    return np.asarray([atomic_numbers[name] for name in names], dtype=np.int64)


def _load(set_dir: Path, stem: str | None, frames: int, width: int | None) -> np.ndarray | None:
    """`<stem>.npy` of a set as [frames, width] (or [frames]); None when there is no such file."""
    if stem is None or not (set_dir / f"{stem}.npy").is_file():
        return None
    array = np.load(set_dir / f"{stem}.npy")
    shape = (frames,) if width is None else (frames, width)
    if array.size != int(np.prod(shape)):
        raise CorruptInputError(
            f"{set_dir / f'{stem}.npy'}: shape {array.shape} does not fit {frames} frames "
            f"(expected {shape})"
        )
    return array.reshape(shape).astype(np.float64)


def read_deepmd_system(
    system: Path,
    *,
    energy_key: str | None,
    forces_key: str | None,
    units: Units,
    group_by: str,
    name: str,
) -> Iterator[SourceItem]:
    with reading(system, "deepmd system"):
        numbers_of_type = _type_numbers(system)
        types = np.loadtxt(system / "type.raw", dtype=np.int64, ndmin=1)
        periodic = not (system / "nopbc").exists()
        sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        raise CorruptInputError(f"{system}: no set.*/ folders")
    natoms = len(types)
    for set_dir in sets:
        with reading(set_dir, "deepmd set"):
            coord_path = set_dir / "coord.npy"
            if not coord_path.is_file():
                raise CorruptInputError(f"{set_dir}: no coord.npy")
            coords = np.load(coord_path)
            frames = coords.shape[0]
            coords = _load(set_dir, "coord", frames, 3 * natoms).reshape(frames, natoms, 3)
            boxes = _load(set_dir, "box", frames, 9) if periodic else None
            if periodic and boxes is None:
                raise CorruptInputError(
                    f"{set_dir}: no box.npy (add a `nopbc` file to {system} for a molecule)"
                )
            energies = _load(set_dir, energy_key, frames, None)
            forces = _load(set_dir, forces_key, frames, 3 * natoms)
            virials = _load(set_dir, "virial", frames, 9) if periodic else None
            frame_types = None
            if (set_dir / "real_atom_types.npy").is_file():
                frame_types = (
                    np.load(set_dir / "real_atom_types.npy")
                    .reshape(frames, natoms)
                    .astype(np.int64)
                )
        for index in range(frames):
            source_id = f"{name}/{set_dir.name}:{index}"
            frame_type = types if frame_types is None else frame_types[index]
            if frame_type.min() < 0 or frame_type.max() >= len(numbers_of_type):
                raise CorruptInputError(
                    f"{set_dir}: frame {index} uses a type outside type_map.raw "
                    f"({len(numbers_of_type)} types)"
                )
            cell = boxes[index].reshape(3, 3) if boxes is not None else np.zeros((3, 3))
            volume = abs(float(np.linalg.det(cell)))
            record = StructureRecord(
                atomic_numbers=numbers_of_type[frame_type],
                positions=coords[index],
                cell=cell,
                pbc=np.full(3, periodic),
                energy=None if energies is None else float(energies[index]),
                forces=None if forces is None else forces[index].reshape(natoms, 3),
                source_id=source_id,
                stress=-virials[index].reshape(3, 3) / volume
                if virials is not None and volume > 0
                else None,
            )
            yield SourceItem(units.apply(record), name if group_by == "file" else source_id)


def read_deepmd(
    path: str | Path,
    *,
    energy_key: str | None = "energy",
    forces_key: str | None = "force",
    units: Units = Units(),
    group_by: str = "frame",
) -> Iterator[SourceItem]:
    """Every frame of the deepmd systems at or below `path`, in eV and Angstrom."""
    if group_by not in ("frame", "file"):
        raise ValueError(
            "deepmd frames have no info keys: group_by must be frame or file (a system), "
            f"not {group_by!r}"
        )
    root = Path(path)
    for system in find_systems(root):
        name = system.name if system == root else str(system.relative_to(root))
        yield from read_deepmd_system(
            system,
            energy_key=energy_key,
            forces_key=forces_key,
            units=units,
            group_by=group_by,
            name=name,
        )
