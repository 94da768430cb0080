#!/usr/bin/env bash
# Snakemake runs this once inside the env it built from lamm.yaml (snakemake --use-conda), from
# the directory snakemake runs in. The env holds the dependencies; the `lamm` package itself comes
# from the checkout (editable, so the rules run the checkout's code). Snakemake copies the env file
# before building it, so lamm.yaml cannot name the checkout by a relative path.
set -euo pipefail
checkout="${LAMM_CHECKOUT:-$PWD}"
if ! grep -qs '^name = "lamm"' "$checkout/pyproject.toml"; then
    echo "lamm.post-deploy.sh: $checkout holds no lamm pyproject.toml; run snakemake from the lamm" \
        "checkout or set LAMM_CHECKOUT to it" >&2
    exit 1
fi
python -m pip install --no-deps -e "$checkout"
