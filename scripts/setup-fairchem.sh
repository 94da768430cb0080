#!/usr/bin/env bash
# A side venv with fairchem-core 1.x (the last line with EquiformerV2) on our CPU torch, for
# `lamm bench model --fairchem-python .venv-fairchem/bin/python`.
#
# fairchem-core 1.x pins torch ~= 2.4 and imports torch_scatter, which has no wheel for our torch
# and does not build here. So: torch first, pinned (a bare requirement would pull the CUDA build),
# fairchem-core with --no-deps, then only what importing its EquiformerV2 needs, and our
# pure-PyTorch torch_scatter (lamm/bench/peers/shims) on the venv's path through a .pth file.
#
#   bash scripts/setup-fairchem.sh [VENV]      (default .venv-fairchem; idempotent)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-fairchem}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
FAIRCHEM_VERSION="${FAIRCHEM_VERSION:-1.10.0}"
SHIMS="$ROOT/lamm/bench/peers/shims"

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --no-compile)
"${PIP[@]}" "torch==$TORCH_VERSION"
"${PIP[@]}" --no-deps "fairchem-core==$FAIRCHEM_VERSION"
# What `import fairchem.core.models.equiformer_v2` reaches: the package __init__ imports the ASE
# calculator, hence datasets (lmdb, ase), common.utils (matplotlib, pyyaml, torch_geometric) and
# the model registry (requests, huggingface_hub, pydantic). e3nn for the SO(3) grids. Not
# installed: wandb, tensorboard, hydra, pymatgen, numba (trainers and preprocessing not used here).
"${PIP[@]}" e3nn torch-geometric numpy pyyaml matplotlib ase lmdb tqdm requests huggingface_hub pydantic
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
echo "$SHIMS" > "$SITE/lamm_peer_shims.pth"
# Fail here, not in the benchmark, when the import chain needs more than the above.
"$VENV/bin/python" -c "import torch, torch_scatter, fairchem.core.models.equiformer_v2.equiformer_v2 as m; print('fairchem-core', __import__('fairchem.core').core.__version__, 'torch', torch.__version__, 'torch_scatter', torch_scatter.__version__)"
