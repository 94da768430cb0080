"""The offline demo dataset: LaMM's ten pre-training subsets and HME21 in miniature.

Structures come from real chemistry and are labeled by real methods that run offline, so the
data behave like the releases without a download or a GPU. Two label sets (`catalog`):

| family (module)             | subsets                   | light labels        | universal labels |
|-----------------------------|---------------------------|---------------------|------------------|
| `slabs`, `surfaces` (OC20)  | oc20_s2ef, oc20_is2re     | EMT, 7 metals       | SevenNet-0       |
| `slabs`, `surfaces` (OC22)  | oc22_s2ef, oc22_is2re     | EMT, O overlayers   | CHGNet 0.3.0     |
| `frameworks` (ODAC23)       | odac23_s2ef, odac23_is2re | EMT                 | CHGNet r2SCAN    |
| `bulk`, `crystals` (OMat24) | omat24                    | (not made)          | CHGNet 0.3.0     |
| `reactions`                 | transition1x              | GFN2-xTB            | GFN2-xTB         |
| `molecules`                 | qm7x, qmugs, pubchem3d    | GFN2-xTB, unlabeled | GFN2-xTB         |
| `alloy_md` (downstream)     | hme21 (train/val/test)    | VariantEMT          | SevenNet-l3i5    |

`catalog` holds the subsets and their sizes per scale and label set, `generate` the parallel,
deterministic orchestration (`generate_demo`), `labelers` the calls into EMT and tblite,
`universal` the universal potentials, `elements` and `crystals` the periodic table they cover.
"""
