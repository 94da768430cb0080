# Shared by every rule file: config validation, paths, and the tags each job hands to MLflow.
from pathlib import Path

from lamm.config import ConfigError, validate_config


try:
    # Replaces the config with the validated one, schema defaults filled in.
    config.update(
        validate_config(
            config, workflow.source_path("../schemas/config.schema.yaml"), name="workflow config"
        )
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None

RESULTS = Path(config["results"])
LOGS = RESULTS / "logs"

# Every rule calls `lamm {LAMM_TAGS} <subcommand>`: the MLflow run of the job then carries the
# rule name and wildcards without the library knowing about Snakemake.
LAMM_TAGS = "--tag snakemake_rule={rule} --tag 'snakemake_wildcards={wildcards}'"

# The software of every job: the conda environment of environment.yml (`conda env create -f
# environment.yml`), used with `--use-conda`; without it, jobs run in the current environment
# (the .venv of `make install`).
CONDA_ENV = "lamm"

# What `rule all` asks for: each stage's rule file appends its final outputs here.
ALL_OUTPUTS = []
