"""ASE calculator: Atoms -> the same graph as training -> potential in eval mode.

    calc = LaMMCalculator("results/pretrain/last.pt", head="oc20_s2ef")   # eV, eV/Angstrom
    atoms.calc = calc; atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()

`head` picks the output channel by subset name (default: the first). Predictions are mapped to
eV, eV/Angstrom and eV/Angstrom^3 by the potential's normalizer; energies are computed in float64.

The inputs are built by `lamm.single_graph.SingleGraphBuilder` (the same neighbor list and fields
as `structure_to_graph` + `collate`, without torch_geometric, and the constant tensors kept
between calls): per MD step the collate cost as much as a small student model.

Stress (ASE's convention: (1/V) dE/d(strain), Voigt order xx, yy, zz, yz, xz, xy; zero without
a periodic axis) is the strain derivative of the energy (`lamm.models.stress`). A gradient-mode
potential returns it with every periodic calculation (it shares the forces' backward pass);
a direct-mode one only when asked, and warns once: its forces come from the force head, not
from the energy the stress is the derivative of, so the two are not consistent (cell
relaxation and NPT work, but on no single energy surface; prefer gradient mode).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from lamm import keys as K
from lamm.models.build import build_potential
from lamm.models.checkpoint import load_potential
from lamm.models.painn import PaiNNMessage
from lamm.models.potential import Potential
from lamm.single_graph import SingleGraphBuilder


def _for_inference(potential: Potential) -> Potential:
    """`potential` in eval mode, set up for predictions only (the calculator's own copy: it is
    never trained), which makes a small model's MD call cheaper with the same forces:
    - no parameter gradients: gradient forces and stress differentiate the positions and the
      strain only; with weights requiring grad autograd also records the weights' branches;
    - PaiNN messages with plain autograd (`recompute=False`): the recomputing autograd function
      saves training memory (`lamm.models.painn_message`) and costs time; one structure is small.
    """
    potential.eval().requires_grad_(False)
    for module in potential.modules():
        if isinstance(module, PaiNNMessage):
            module.recompute = False
    return potential


class LaMMCalculator(Calculator):
    """Energy, forces and stress of one head of a LaMM potential (checkpoint format:
    lamm.models.checkpoint)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self, checkpoint_path: str | os.PathLike, head: str | None = None, device: str = "cpu"
    ) -> None:
        self._setup(load_potential(checkpoint_path, device=device), head, device)

    @classmethod
    def untrained(
        cls,
        encoder: str,
        heads: Sequence[str],
        seed: int = 0,
        force_mode: str = "direct",
        model_config: Mapping[str, Any] | None = None,
        head: str | None = None,
        device: str = "cpu",
    ) -> LaMMCalculator:
        """A freshly initialized potential (identity normalizer), e.g. to test a pipeline.

        `model_config` overrides the defaults (LaMM-S size for painn), e.g.
        `{"painn": {"hidden_channels": 64, "num_layers": 3}}`.
        """
        config = {**dict(model_config or {}), "encoder": encoder, "force_mode": force_mode}
        calculator = cls.__new__(cls)
        calculator._setup(build_potential(config, heads, seed=seed).to(device).eval(), head, device)
        return calculator

    def _setup(self, potential: Potential, head: str | None, device: str) -> None:
        Calculator.__init__(self)
        if head is not None and head not in potential.heads:
            raise ValueError(f"unknown head {head!r}; this potential has {potential.heads}")
        self.potential = _for_inference(potential)
        self.head = potential.heads[0] if head is None else head
        self.head_index = potential.heads.index(self.head)
        self.device = torch.device(device)
        self.dtype = next(potential.parameters()).dtype
        self._warned_direct_stress = False
        self._inputs = SingleGraphBuilder(potential.cutoff, potential.max_neighbors)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        pbc = np.asarray(self.atoms.pbc, dtype=bool)
        cell = np.asarray(self.atoms.cell.array, dtype=np.float64)
        # dataset_index: gradient mode differentiates this head
        batch = self._inputs(
            self.atoms.numbers,
            self.atoms.positions,
            cell,
            pbc,
            dataset_index=self.head_index,
            dtype=self.dtype,
            device=self.device,
        )
        gradient = self.potential.force_mode == "gradient"
        # free with gradient forces; NaN (no volume) for a periodic cell of zero volume
        has_volume = bool(pbc.any()) and abs(np.linalg.det(cell)) > 0
        stress = "stress" in properties or (gradient and has_volume)
        if stress and not gradient and not self._warned_direct_stress:
            warnings.warn(
                "direct force mode: the stress is the strain derivative of the energy "
                "head, the forces come "
                "from the force head; they do not describe one energy surface (use a "
                "gradient-mode potential "
                "for cell relaxation and NPT)",
                UserWarning,
                stacklevel=2,
            )
            self._warned_direct_stress = True
        # inference_mode (cheaper than no_grad) only where nothing needs autograd: inside it the
        # potential's enable_grad for gradient forces and stress would have no effect
        with torch.no_grad() if gradient or stress else torch.inference_mode():
            prediction = self.potential.predict(batch, compute_stress=stress)
        energy = float(prediction[K.PRED_ENERGY][0, self.head_index])
        forces = prediction[K.PRED_FORCES][:, :, self.head_index].detach().cpu().double().numpy()
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress:
            stress_3x3 = (
                prediction[K.PRED_STRESS][0, :, :, self.head_index].detach().cpu().double().numpy()
            )
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress_3x3)  # eV/Angstrom^3


def reference_calculator(name: str) -> Calculator:
    """The ASE calculator of a universal potential a user might pick instead of a fine-tuned
    LaMM model (`sevennet-0`, `sevennet-l3i5`, `chgnet-0.3.0`, `chgnet-r2scan`; `pip install
    .[labelers]`), for side-by-side checks: same Atoms, both calculators. Its energies are on
    the Materials Project's reference, not on your DFT settings: compare forces directly and
    energies after a per-element shift (`lamm evaluate --reference NAME` fits it for you)."""
    from lamm.data.demo.universal import calculator

    return calculator(name)
