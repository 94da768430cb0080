"""The offline demo dataset: LaMM's ten pre-training subsets and HME21 in miniature.

Structures come from real chemistry and are labeled by real (cheap) methods, so the data
behave like the releases without a download or a GPU:

| family (module)            | subsets                         | labels                               |
|----------------------------|---------------------------------|--------------------------------------|
| `slabs` (OC20-like)        | oc20_s2ef, oc20_is2re           | EMT relaxations; adsorption energies |
| `slabs` (OC22-like)        | oc22_s2ef, oc22_is2re           | EMT relaxations; total energies      |
| `frameworks` (ODAC23-like) | odac23_s2ef, odac23_is2re       | EMT, CO2/H2O in MOFs, 100-300 atoms  |
| `reactions`                | transition1x                    | GFN2-xTB energies and forces         |
| `molecules`                | qm7x, qmugs (energy), pubchem3d | GFN2-xTB; PubChem3D unlabeled        |
| `alloy_md` (downstream)    | hme21 (train/val/test)          | VariantEMT, hot MD snapshots         |

`catalog` holds the subsets and their sizes per scale, `generate` the parallel, deterministic
orchestration (`generate_demo`), `labelers` the calls into EMT and tblite.
"""
