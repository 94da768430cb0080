"""DFT outputs as they come: every file ASE reads, and through dpdata the formats ASE lacks.

`detect_format(path)` names the reader of a file from its content (then its name):
- a folder with `type.raw` (or systems below it): deepmd-kit npy systems
  (`lamm.data.readers.deepmd`);
- a file whose first lines say which program wrote it and which ASE cannot read (CP2K,
  Gaussian logs, ORCA, SIESTA, PWmat, ABACUS running logs): dpdata, with dpdata's format name
  (`cp2k/output`, `gaussian/log`, ...); ASE mistakes a CP2K output for a Quantum ESPRESSO one;
- anything `ase.io.formats.filetype` recognizes (vasprun.xml, OUTCAR, QE pw.x output, CASTEP,
  GPAW, FHI-aims, extxyz, ASE trajectories and databases, also compressed .gz/.bz2/.xz): ASE.

Labels, in eV, Angstrom, eV/Angstrom and eV/Angstrom^3 (ASE's stress sign, (1/V) dE/d(strain)):
- energy: where a code reports both, `energy="free"` takes the free energy (VASP's TOTEN, the
  energy the forces are the derivative of with smearing; ASE's `free_energy`) and
  `energy="zero-smearing"` the sigma -> 0 extrapolation (VASP's energy(sigma->0); ASE's
  `energy`). Codes that report one energy give it either way; `energy_choice` says which
  result key a file's energies come from and whether the two differ in that file.
- stress: ASE's calculator stress where the file has one; dpdata's virial W (eV) as
  stress = -W / V, its sign convention (deepmd-kit's ASE calculator does the same).

A VASP OUTCAR ionic step whose electronic loop ran the NELM iterations it was allowed is
skipped as `unconverged_scf` (counted, as every skip): its energy and forces are not the DFT
answer.

The group of a frame (what a split keeps together) is its file by default (one AIMD run, one
relaxation), or the frame itself (`group_by="frame"`).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from lamm.data.readers import UNPARSABLE_RECORD, CorruptInputError, SourceItem, reading
from lamm.data.record import StructureRecord

ENERGY_CHOICES = ("free", "zero-smearing")
UNCONVERGED = "unconverged_scf"
# The ASE result key of each choice.
_ENERGY_KEYS = {"free": "free_energy", "zero-smearing": "energy"}
# Program banners in the first lines of an output -> dpdata's format (ASE reads none of these).
DPDATA_SIGNATURES = (
    (re.compile(r"CP2K\|"), "cp2k/output"),
    (re.compile(r"Entering Gaussian System|Gaussian, Inc\."), "gaussian/log"),
    (re.compile(r"\* O   R   C   A \*"), "orca/spout"),
    (re.compile(r"Welcome to SIESTA|SIESTA Version", re.IGNORECASE), "siesta/output"),
    (re.compile(r"ABACUS"), "abacus/scf"),
)
_HEAD_BYTES = 64 * 1024


def _head(path: Path) -> str:
    """The first 64 KiB of a file as text, decompressed when the name says .gz, .bz2 or .xz."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    with opener(path, "rb") as handle:
        return handle.read(_HEAD_BYTES).decode("utf-8", errors="replace")


def detect_format(path: str | Path) -> tuple[str, str | None]:
    """(reader, its format name) for one input: ("deepmd", None), ("dpdata", "cp2k/output"),
    ("ase", "vasp-xml"), ... Raises ValueError naming the file and the --format to pass."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        if (path / "type.raw").is_file() or any(path.rglob("type.raw")):
            return "deepmd", None
        raise ValueError(
            f"{path} is a folder without deepmd systems (type.raw); pass its files as --input "
            "(globs work: --input 'runs/*/vasprun.xml')"
        )
    head = _head(path)
    for pattern, fmt in DPDATA_SIGNATURES:
        if pattern.search(head):
            return "dpdata", fmt
    from ase.io.formats import UnknownFileTypeError, filetype

    try:
        return "ase", filetype(str(path), guess=False)
    except (UnknownFileTypeError, OSError, ValueError) as err:
        raise ValueError(
            f"{path}: the format cannot be told from the file ({err}); pass --format ase with "
            "--ase-format NAME (an ase.io format) or --format dpdata with --dpdata-format NAME "
            "(e.g. cp2k/output, abacus/scf, gaussian/log)"
        ) from None


def energy_choice(results_list: list[dict], energy: str) -> dict[str, object]:
    """Which ASE result key the energies of one file come from, and whether the code reported
    two different energies (free vs zero-smearing) there."""
    if energy not in ENERGY_CHOICES:
        raise ValueError(f"energy must be one of {ENERGY_CHOICES}, got {energy!r}")
    both = [r for r in results_list if "energy" in r and "free_energy" in r]
    distinct = any(abs(float(r["energy"]) - float(r["free_energy"])) > 1e-9 for r in both)
    key = _ENERGY_KEYS[energy]
    if not any(key in r for r in results_list):
        key = "energy" if key == "free_energy" else "free_energy"
    return {"choice": energy, "key": key, "distinct_in_file": distinct}


def vasp_unconverged_steps(path: Path) -> set[int]:
    """Ionic steps (0-based, in file order) of an OUTCAR whose electronic loop ran NELM
    iterations: VASP stops there whether or not EDIFF is reached (and older versions print
    "aborting loop because EDIFF is reached" either way), so, as dpdata does, NELM iterations
    count as not converged."""
    from ase.io.formats import open_with_compression

    nelm, iterations, current = None, [], None
    with open_with_compression(str(path), "r") as handle:
        for line in handle:
            if nelm is None and line.strip().startswith("NELM"):
                nelm = int(line.split("=", 1)[1].split(";", 1)[0])
            elif "Iteration" in line and "(" in line:
                ionic = line.split("Iteration", 1)[1].split("(", 1)[0].strip()
                if ionic != current:
                    current = ionic
                    iterations.append(0)
                iterations[-1] += 1
    if nelm is None:
        return set()
    return {index for index, count in enumerate(iterations) if count >= nelm}


def _stress_of(results: dict) -> np.ndarray | None:
    stress = results.get("stress")
    if stress is None:
        return None
    from ase.stress import voigt_6_to_full_3x3_stress

    stress = np.asarray(stress, dtype=np.float64)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress


def read_ase_file(
    path: str | Path,
    *,
    ase_format: str | None = None,
    energy: str = "free",
    group_by: str = "file",
    choices: dict[str, dict] | None = None,
) -> Iterator[SourceItem]:
    """Every frame ASE reads from `path` (module docstring). `choices`, when given, receives
    the file's `energy_choice` under its path."""
    from ase.io import iread

    path = Path(path)
    with reading(path, ase_format or "ASE"):
        frames = list(iread(str(path), index=":", format=ase_format))
    if not frames:
        raise CorruptInputError(f"{path}: no frame could be read (format {ase_format or 'auto'})")
    results = [dict(a.calc.results) if a.calc is not None else {} for a in frames]
    unconverged = vasp_unconverged_steps(path) if ase_format == "vasp-out" else set()
    chosen = energy_choice(results, energy)
    if choices is not None:
        choices[str(path)] = chosen
    for index, (atoms, labels) in enumerate(zip(frames, results, strict=True)):
        source_id = f"{path.name}:{index}"
        group = path.name if group_by == "file" else source_id
        if index in unconverged:
            yield SourceItem(None, group, UNCONVERGED)
            continue
        try:
            value = labels.get(chosen["key"])
            record = StructureRecord.from_atoms(atoms, source_id=source_id)
            record = StructureRecord(
                **{
                    **record.__dict__,
                    "energy": None if value is None else float(value),
                    "stress": _stress_of(labels),
                }
            )
        except (TypeError, ValueError):
            yield SourceItem(None, group, UNPARSABLE_RECORD)
            continue
        yield SourceItem(record, group)


def element_of(name: str) -> int:
    """The atomic number of a dpdata atom name: an element symbol, or a kind label that starts
    with one (CP2K's Fe1, Fe_up, O2)."""
    match = re.match(r"[A-Z][a-z]?", str(name))
    for symbol in (match.group(0), match.group(0)[:1]) if match else ():
        if atomic_numbers.get(symbol, 0) > 0:  # not ASE's dummy X (0)
            return atomic_numbers[symbol]
    raise ValueError(f"atom name {name!r} does not start with an element symbol")


def read_dpdata_file(
    path: str | Path, *, dpdata_format: str, group_by: str = "file"
) -> Iterator[SourceItem]:
    """Every frame dpdata's `LabeledSystem(path, fmt=dpdata_format)` reads (module docstring)."""
    import dpdata

    path = Path(path)
    with reading(path, f"dpdata {dpdata_format}"):
        system = dpdata.LabeledSystem(str(path), fmt=dpdata_format)
        data = system.data
        numbers = np.asarray(
            [element_of(data["atom_names"][t]) for t in data["atom_types"]], dtype=np.int64
        )
    periodic = not data.get("nopbc", False)
    virials = data.get("virials")
    for index in range(len(data["energies"])):
        source_id = f"{path.name}:{index}"
        cell = np.asarray(data["cells"][index], dtype=np.float64) if periodic else np.zeros((3, 3))
        stress = None
        volume = abs(float(np.linalg.det(cell)))
        if virials is not None and periodic and volume > 0:
            stress = -np.asarray(virials[index], dtype=np.float64) / volume
        record = StructureRecord(
            atomic_numbers=numbers,
            positions=np.asarray(data["coords"][index], dtype=np.float64),
            cell=cell,
            pbc=np.full(3, periodic),
            energy=float(data["energies"][index]),
            forces=np.asarray(data["forces"][index], dtype=np.float64)
            if "forces" in data
            else None,
            source_id=source_id,
            stress=stress,
        )
        yield SourceItem(record, path.name if group_by == "file" else source_id)
