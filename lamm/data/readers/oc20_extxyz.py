"""The raw OC20 S2EF train/val files: `<n>.extxyz.xz` frames with `<n>.txt.xz` frame logs.

Facts (fairchem `preprocess_ef.py`, DATASETS.md section 1): the extxyz header is
`Properties=species:S:1:pos:R:3:move_mask:L:1:tags:I:1:forces:R:3 energy=... free_energy=... pbc="T
T T"`; `energy` (not `free_energy`) is the DFT total energy in eV (RPBE), forces in eV/A,
`move_mask` False marks fixed atoms (ASE turns it into FixAtoms), tags 0 subsurface, 1 surface, 2
adsorbate. Line i of the `.txt` belongs to frame i: `random<sid>,frame<fid>,<reference energy>`. The
reference energy (clean slab + gas-phase adsorbate) is what `preprocess_ef.py --ref-energy`
subtracts to get adsorption energies; we store totals, so it is parsed (a malformed line is an
error) but not applied. The system id is the split group: all frames of one relaxation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lamm.data.readers import CorruptInputError, SourceItem, input_files, reading
from lamm.data.readers.extxyz import iter_frames, open_text
from lamm.data.record import StructureRecord


def frame_log_path(extxyz: Path) -> Path:
    """`<n>.extxyz[.xz]` -> `<n>.txt[.xz]`."""
    stem = extxyz.name.removesuffix(".xz").removesuffix(".extxyz")
    return extxyz.with_name(f"{stem}.txt{'.xz' if extxyz.name.endswith('.xz') else ''}")


def parse_frame_log(line: str, path: Path, index: int) -> tuple[str, str, float]:
    """`random1331004,frame143,-12.3` -> ("random1331004", "frame143", -12.3)."""
    parts = line.strip().split(",")
    try:
        system, frame, reference = parts[0], parts[1], float(parts[2])
    except (IndexError, ValueError):
        raise CorruptInputError(
            f"{path}: line {index + 1}: expected 'random<sid>,frame<fid>,<energy>', got "
            f"{line.strip()[:80]!r}"
        ) from None
    if not system.startswith("random") or not frame.startswith("frame"):
        raise CorruptInputError(
            f"{path}: line {index + 1}: expected 'random<sid>,frame<fid>,...', got "
            f"{line.strip()[:80]!r}"
        )
    return system, frame, reference


def read_oc20_extxyz(path: str | Path) -> Iterator[SourceItem]:
    """Every frame of the `*.extxyz[.xz]` files of a directory (or of one such file)."""
    for file in input_files(path, (".extxyz", ".extxyz.xz")):
        log_path = frame_log_path(file)
        if not log_path.is_file():
            raise CorruptInputError(f"{file}: its frame log {log_path.name} is missing")
        with reading(log_path), open_text(log_path) as handle:
            logs = [line for line in handle if line.strip()]
        with reading(file), open_text(file) as handle:
            count = 0
            for index, atoms in enumerate(iter_frames(handle, file)):
                if index >= len(logs):
                    raise CorruptInputError(
                        f"{file}: more frames than the {len(logs)} lines of {log_path.name}"
                    )
                system, frame, _ = parse_frame_log(logs[index], log_path, index)
                record = StructureRecord.from_atoms(atoms, source_id=f"{system}/{frame}")
                yield SourceItem(record, system)
                count += 1
        if count != len(logs):
            raise CorruptInputError(
                f"{file}: {count} frames but {len(logs)} lines in {log_path.name}"
            )
