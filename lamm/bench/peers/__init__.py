"""What peer implementations need to run beside ours in `lamm bench model`.

`shims/` holds stand-ins for compiled extensions a peer imports but that do not build here
(torch_scatter for fairchem-core 1.x): `scripts/setup-fairchem.sh` puts that folder on the
peer venv's path. Nothing in the training pipeline imports this package.
"""
