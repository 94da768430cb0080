"""Per-head map between physical units (eV, eV/Angstrom) and the model's normalized targets.

LaMM (after OC22 and JMP, SPEC section 3) trains every head on referenced, normalized labels:

    E_norm = (E - sum_j e_{d, Z_j} - mean_d) / std_d          per structure, head d
    F_norm = F / rms_d
    S_norm = S / stress_scale_d                                 stress, eV/Angstrom^3

with per-element reference energies e_{d, Z} fitted by least squares on the training split of
subset d, and mean/std/rms measured on the referenced training labels (see
`lamm.data.referencing`). The model predicts normalized values; this module maps them back,
so users and metrics always see eV and eV/Angstrom. It is part of the model's state_dict, so a
checkpoint alone converts its predictions.

The stress has its own scale, `stress_scale` (eV/Angstrom^3, the median over training structures
of the RMS of their 9 components; `lamm.data.referencing`): stress and force have different
units, and dividing the stress by the force RMS (what this module did first) made the weight of
the stress in the loss depend on the material: typical stresses of a few GPa are 0.01-0.02
eV/Angstrom^3, so over a force RMS of about 1 eV/A the stress term moved the model 100 times less
than the force term at equal weights. The median, not the RMS, because equation-of-state scans
reach thousands of GPa at their most compressed cells and would set the scale alone. A
checkpoint written before `stress_scale` existed loads with stress_scale = force_rms, which is
exactly what it was trained with.

Energies are handled in float64: total energies reach 1e5 eV, where float32 resolves only
about 0.01 eV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

NUM_ELEMENTS = 119  # index = atomic number; 0 unused


class Normalizer(nn.Module):
    """Buffers per head d: element_references [D, 119] (eV), energy_mean/std [D] (eV),
    force_rms [D] (eV/Angstrom), stress_scale [D] (eV/Angstrom^3).

    The identity (zeros, ones) until statistics are loaded.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}")
        self.register_buffer(
            "element_references", torch.zeros(num_heads, NUM_ELEMENTS, dtype=torch.float64)
        )
        self.register_buffer("energy_mean", torch.zeros(num_heads, dtype=torch.float64))
        self.register_buffer("energy_std", torch.ones(num_heads, dtype=torch.float64))
        self.register_buffer("force_rms", torch.ones(num_heads, dtype=torch.float64))
        self.register_buffer("stress_scale", torch.ones(num_heads, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # checkpoints from before stress_scale: their stress was scaled by the force RMS
        if prefix + "stress_scale" not in state_dict and prefix + "force_rms" in state_dict:
            state_dict[prefix + "stress_scale"] = state_dict[prefix + "force_rms"].clone()
        super()._load_from_state_dict(state_dict, prefix, *args)

    @property
    def num_heads(self) -> int:
        return int(self.energy_mean.shape[0])

    @classmethod
    def from_statistics(cls, statistics: Sequence[Mapping[str, Any]]) -> Normalizer:
        """One mapping per head with `element_references` ({Z: eV}), `energy_mean`,
        `energy_std`, `force_rms` and `stress_scale` (the JSON of `lamm.data.referencing`; without
        `stress_scale`, the force RMS)."""
        normalizer = cls(len(statistics))
        for head, stats in enumerate(statistics):
            normalizer.set_head(head, stats)
        return normalizer

    def set_head(self, head: int, stats: Mapping[str, Any]) -> None:
        """Load the statistics of one head (used when fine-tuning refits a head)."""
        references = torch.zeros(NUM_ELEMENTS, dtype=torch.float64)
        for z, value in (stats.get("element_references") or {}).items():
            references[int(z)] = float(value)
        std, rms = float(stats.get("energy_std", 1.0)), float(stats.get("force_rms", 1.0))
        stress_scale = float(stats.get("stress_scale", rms))
        if not std > 0 or not rms > 0 or not stress_scale > 0:
            raise ValueError(
                f"head {head}: energy_std, force_rms and stress_scale must be positive, got "
                f"{std}, {rms}, {stress_scale}"
            )
        with torch.no_grad():
            self.element_references[head] = references.to(self.element_references.device)
            self.energy_mean[head] = float(stats.get("energy_mean", 0.0))
            self.energy_std[head] = std
            self.force_rms[head] = rms
            self.stress_scale[head] = stress_scale

    def reference_energy(
        self, atomic_numbers: torch.Tensor, batch: torch.Tensor, num_graphs: int
    ) -> torch.Tensor:
        """[B, D] float64: sum of the element references of each structure, for every head."""
        per_atom = self.element_references[:, atomic_numbers].T  # [N, D]
        out = torch.zeros(num_graphs, self.num_heads, dtype=torch.float64, device=per_atom.device)
        return out.index_add_(0, batch, per_atom)

    def normalize_energy(
        self,
        energy: torch.Tensor,
        atomic_numbers: torch.Tensor,
        batch: torch.Tensor,
        dataset_index: torch.Tensor,
    ) -> torch.Tensor:
        """[B] eV -> [B] normalized target of each structure's own head (float64)."""
        reference = self.reference_energy(atomic_numbers, batch, energy.shape[0])
        own = reference.gather(1, dataset_index.view(-1, 1)).squeeze(1)  # [B]
        return (energy.double() - own - self.energy_mean[dataset_index]) / self.energy_std[
            dataset_index
        ]

    def denormalize_energy(
        self, prediction: torch.Tensor, atomic_numbers: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:
        """[B, D] normalized -> [B, D] eV (float64), every head with its own statistics."""
        reference = self.reference_energy(atomic_numbers, batch, prediction.shape[0])
        return prediction.double() * self.energy_std + self.energy_mean + reference

    def normalize_forces(
        self, forces: torch.Tensor, atom_dataset_index: torch.Tensor
    ) -> torch.Tensor:
        """[N, 3] eV/Angstrom -> [N, 3] normalized by the force RMS of each atom's head."""
        return forces / self.force_rms[atom_dataset_index].to(forces.dtype).unsqueeze(1)

    def denormalize_forces(self, prediction: torch.Tensor) -> torch.Tensor:
        """[N, 3, D] normalized -> [N, 3, D] eV/Angstrom."""
        return prediction * self.force_rms.to(prediction.dtype)

    def normalize_stress(self, stress: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:
        """[B, 3, 3] eV/Angstrom^3 -> [B, 3, 3] divided by the stress RMS of each structure's head.

        The potential's normalized stress is (energy_std / stress_scale) (1/V) dE_norm/d(strain),
        as its gradient forces are -(energy_std / force_rms) dE_norm/dx.
        """
        return stress / self.stress_scale[dataset_index].to(stress.dtype).view(-1, 1, 1)

    def denormalize_stress(self, prediction: torch.Tensor) -> torch.Tensor:
        """[B, 3, 3, D] normalized -> [B, 3, 3, D] eV/Angstrom^3."""
        return prediction * self.stress_scale.to(prediction.dtype)
