# Quick start:  make demo   (install, then the whole offline pipeline)
#               make test   (install, then the test suite)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# The stamp makes a second `make install` a no-op until pyproject.toml changes.
STAMP := $(VENV)/.lamm-installed
TORCH_VERSION := 2.13.0
CORES ?= all
USE_UV ?= 1
PYTEST_ARGS ?=

.PHONY: install demo test test-cluster lint clean fairchem-env

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` requirement would pull the CUDA build (gigabytes).
	$(BIN)/python -m pip install --quiet --no-compile "torch==$(TORCH_VERSION)"
	# The rest with uv when it installs (seconds: parallel downloads and installs; pip takes 1.5-3
	# minutes of the 15-minute demo here), with pip when it does not. uv keeps the torch above: it
	# satisfies our bound. A USE_UV=0 make install uses pip alone.
	if [ "$(USE_UV)" != 0 ] && $(BIN)/python -m pip install --quiet --no-compile "uv>=0.9"; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,labelers]" \
	  || { echo "uv failed; installing with pip" >&2; $(BIN)/python -m pip install --quiet --no-compile -e ".[test,labelers]"; }; \
	else \
	  $(BIN)/python -m pip install --quiet --no-compile -e ".[test,labelers]"; \
	fi
	# Bytecode (ours too: with PYTHONDONTWRITEBYTECODE set, every job would recompile lamm) on every
	# core (pip compiles on one: a minute more on 2 cores). Files that are not
	# Python 3 (templates, old test data) fail to compile and are skipped, as pip skips them.
	$(BIN)/python -m compileall -q -j 0 lamm "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /dev/null 2>&1 || true
	touch $(STAMP)

demo: install
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --workflow-profile config/profiles/local

# pytest exits 5 when it collected no tests: a suite that ran nothing must not pass.
test: install
	PATH="$(BIN):$$PATH" python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# A real SLURM with two nodes emulated on this host (scripts/slurm-up.sh: installs slurm-wlm,
# slurmdbd, MariaDB and munge when missing, starts two slurmd; needs root or sudo), then the
# cluster tests: a 2-node x 1-rank pre-training, requeue and time-limit preemption with resume to
# the uninterrupted run's weights, the MLflow run, a bogus MASTER_ADDR and an sbatch refusal
# failing in one line, the workflow through the SLURM profile (tests/test_cluster.py; timings
# in docs/cluster.md). scripts/slurm-down.sh stops the daemons.
test-cluster: install
	if [ "$$(id -u)" = 0 ]; then bash scripts/slurm-up.sh; else sudo bash scripts/slurm-up.sh; fi
	LAMM_TEST_CLUSTER=1 PATH="$(BIN):$$PATH" python -m pytest -s -m cluster tests/test_cluster.py $(PYTEST_ARGS)

# A side venv with fairchem-core 1.x's EquiformerV2 on our CPU torch (torch_scatter from our shim),
# for `lamm bench model --preset lamm-l --fairchem-python .venv-fairchem/bin/python`; also turns
# on the fairchem test of tests/test_bench_model_fairchem.py.
fairchem-env:
	PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) bash scripts/setup-fairchem.sh .venv-fairchem

# ruff (format and lint, configured in pyproject.toml) and Snakemake's own linter.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	PATH="$(BIN):$$PATH" snakemake --lint

clean:
	rm -rf results .snakemake
