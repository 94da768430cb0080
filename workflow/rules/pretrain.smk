# Pre-training: one local rule per configured run (config pretrain.runs, in order). The rule submits its
# ranks through submitit itself (here: CPU processes; on a cluster: one multi-node SLURM job
# that requeues itself at its time limit) and waits, so a SLURM profile never submits it twice.
# It always passes --resume: a restarted workflow continues the run from its last checkpoint.
import shlex

from lamm.run_labels import checkpoint_file, epoch_label
from lamm.training.pretrain import load_trainer_config

PRETRAIN_CONFIGS = {run["name"]: run["config"] for run in config["pretrain"]["runs"]}
PRETRAIN_RUNS = {name: load_trainer_config(path) for name, path in PRETRAIN_CONFIGS.items()}
LAUNCHER = config["pretrain"]["launcher"]


def pretrain_dir(run):
    return RESULTS / "pretrain" / run


def pretrain_checkpoints(run):
    """{epoch label: checkpoint path} of a run, in the order of its config."""
    epochs = PRETRAIN_RUNS[run]["train"]["checkpoint_epochs"]
    return {epoch_label(e): pretrain_dir(run) / "checkpoints" / checkpoint_file(e) for e in epochs}


def launcher_options():
    options = [f"--launcher {LAUNCHER['executor']}"]
    if LAUNCHER["executor"] == "local":
        options.append(f"--world-size {LAUNCHER['ranks_per_node']}")
    else:
        options.append(
            f"--nodes {LAUNCHER['nodes']} --ranks-per-node {LAUNCHER['ranks_per_node']} "
            f"--gpus-per-node {LAUNCHER['gpus_per_node']} --gpus-per-task {LAUNCHER['gpus_per_task']} "
            f"--cpus-per-rank {LAUNCHER['cpus_per_rank']} --time-min {LAUNCHER['time_min']}"
        )
        optional = ("partition", "account", "qos", "mem_gb", "master_port")
        options += [f"--{key.replace('_', '-')} {LAUNCHER[key]}" for key in optional if LAUNCHER[key]]
    options.append(f"--rendezvous-timeout-min {LAUNCHER['rendezvous_timeout_min']}")
    for key in ("master_addr", "network_interface"):
        if LAUNCHER[key]:
            options.append(f"--{key.replace('_', '-')} {shlex.quote(LAUNCHER[key])}")
    return " ".join(options)


for _run, _trainer in PRETRAIN_RUNS.items():
    _unknown = set(_trainer["data"]["subsets"]) - set(config["data"]["subsets"])
    if _unknown:
        raise WorkflowError(f"pretrain run {_run!r} trains on subsets the data stage does not make: {sorted(_unknown)}")

    rule:
        name:
            f"pretrain_{_run}"
        input:
            stores=[DATA_DIR / f"{subset}.lmdb" for subset in _trainer["data"]["subsets"]],
            config=PRETRAIN_CONFIGS[_run],
        output:
            checkpoints=list(pretrain_checkpoints(_run).values()),
            summary=pretrain_dir(_run) / "summary.json",
            timings=pretrain_dir(_run) / "timings.csv",
            validation=pretrain_dir(_run) / "validation.csv",
        log:
            LOGS / f"pretrain_{_run}.log",
        params:
            out=pretrain_dir(_run),
            data=DATA_DIR,
            launcher=launcher_options(),
        localrule: True
        threads: LAUNCHER["ranks_per_node"] * LAUNCHER["cpus_per_rank"] if LAUNCHER["executor"] == "local" else 1
        conda:
            LAMM_ENV
        shell:
            f"lamm {LAMM_TAGS} pretrain"
            " --config {input.config} --data {params.data} --out {params.out} --resume {params.launcher} > {log} 2>&1"

    ALL_OUTPUTS.extend([*pretrain_checkpoints(_run).values(), pretrain_dir(_run) / "summary.json"])
