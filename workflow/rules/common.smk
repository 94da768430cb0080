# Shared by all rule files - config validation, paths, and the tags each job hands to MLflow.
from pathlib import Path
from types import SimpleNamespace

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

# Each job calls `lamm {LAMM_TAGS} <subcommand>`, so the MLflow run of the job carries the
# name of its rule and its wildcards without the library knowing about Snakemake.
LAMM_TAGS = "--tag snakemake_rule={rule} --tag 'snakemake_wildcards={wildcards}'"

# The software of every rule: `snakemake --use-conda` builds this env once (with the `lamm`
# package of this checkout, envs/lamm.post-deploy.sh); without --use-conda the rules run in the
# environment snakemake was started from (`make install`'s .venv). A file-based env on purpose:
# a named env (`conda: "lamm"`) makes Snakemake call `conda env export` after every job even
# without --use-conda, which fails on machines without conda.
LAMM_ENV = "../envs/lamm.yaml"

def plan_inputs(rule_file, scope, *names):
    """The names a plan file takes from the files the Snakefile includes before it, as a
    namespace; a WorkflowError names what is missing (an include order that changed)."""
    missing = [name for name in names if name not in scope]
    if missing:
        raise WorkflowError(f"{rule_file} needs {missing} from a rule file included before it")
    return SimpleNamespace(**{name: scope[name] for name in names})


# The targets of `all` (the default): each stage file appends its final outputs here.
ALL_OUTPUTS = []


# Command-line options of the benchmark rules (workflow/rules/bench.smk), from the config.
def balance_options(wildcards):
    settings = config["bench_balance"]
    temperature = "--no-temperature" if settings["temperature"] is None else f"--temperature {settings['temperature']}"
    return " ".join(
        [
            temperature,
            "--world-sizes " + " ".join(map(str, settings["world_sizes"])),
            "--batch-per-rank " + " ".join(map(str, settings["batch_per_rank"])),
            f"--num-splits {settings['num_splits']}",
            f"--epochs {settings['epochs']}",
            f"--work {settings['work']}",
            f"--cutoff {settings['cutoff']}",
            f"--seed {config['seed']}",
        ]
    )


def batching_options(wildcards):
    settings = config["bench_batching"]
    return " ".join(
        [
            "--workers " + " ".join(map(str, settings["workers"])),
            f"--batch-size {settings['batch_size']}",
            f"--batches {settings['batches']}",
            f"--cutoff {settings['cutoff']}",
            f"--max-neighbors {settings['max_neighbors'] or 0}",
            f"--seed {config['seed']}",
        ]
    )
