"""Names of the fields of a graph batch and of model outputs, with shapes and units.

A batch is a `torch_geometric.data.Batch` of B structures with N atoms and M edges in total.
Targets are in the library's units (eV, Angstrom, eV/Angstrom) as stored; normalization
happens inside the training wrapper, never in the data.

Edges follow torch_geometric's source-to-target flow: `edge_index[0]` is the neighbor j
(source of the message), `edge_index[1]` the center i (receiver), and the edge vector is

    r_ij = pos[j] - pos[i] + cell_offsets @ cell[batch[i]]      # points from i to j, Angstrom
"""

# --- inputs -----------------------------------------------------------------------------------
ATOMIC_NUMBERS = "atomic_numbers"  # [N] int64
POSITIONS = "pos"  # [N, 3] float, Angstrom
CELL = "cell"  # [B, 3, 3] float, Angstrom, lattice vectors as rows (zeros for molecules)
PBC = "pbc"  # [B, 3] bool
NATOMS = "natoms"  # [B] int64, atoms per structure
BATCH = "batch"  # [N] int64, structure index of each atom (set by torch_geometric)
EDGE_INDEX = "edge_index"  # [2, M] int64, (source j, target i)
CELL_OFFSETS = "cell_offsets"  # [M, 3] float, integer lattice shifts of j (in units of the cell)
DATASET_INDEX = "dataset_index"  # [B] int64, which subset (head channel) each structure belongs to
FIXED = "fixed"  # [N] bool, atoms held fixed in the source calculation (OC20 move_mask inverted)
TAGS = "tags"  # [N] int64, OC20 tags: 0 subsurface, 1 surface, 2 adsorbate; -1 unknown
SAMPLE_INDEX = "sample_index"  # [B] int64, index of the structure in its store

# --- targets ----------------------------------------------------------------------------------
ENERGY = "energy"  # [B] float64, eV (total, or adsorption for stores whose energy_kind says so)
FORCES = (
    "forces"  # [N, 3] float, eV/Angstrom (denoising samples: minus the applied noise, Angstrom)
)
ENERGY_MASK = "energy_mask"  # [B] bool, structure has an energy label
FORCE_MASK = "force_mask"  # [B] bool, structure has force labels
STRESS = (
    "stress"  # [B, 3, 3] float, eV/Angstrom^3, ASE's sign: (1/V) dE/d(strain) (zeros when absent)
)
STRESS_MASK = "stress_mask"  # [B] bool, structure has a stress label

# --- model outputs ----------------------------------------------------------------------------
PRED_ENERGY = "pred_energy"  # [B, D] energy per head (D = number of heads)
PRED_FORCES = "pred_forces"  # [N, 3, D] forces per head
PRED_STRESS = (
    "pred_stress"  # [B, 3, 3, D] stress per head (own head only, others NaN; lamm.models.potential)
)
NODE_FEATURES = "node_features"  # [N, F] rotation-invariant atom representation (PaiNN s_i)
NODE_VECTORS = "node_vectors"  # [N, 3, F] equivariant vector features (PaiNN v_i)
