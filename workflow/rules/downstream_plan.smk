# The downstream plan: checkpoints to zero-shot, fine-tuned runs to evaluate, dynamics options (rules: downstream.smk).

from lamm.run_labels import epoch_label

# From common.smk and pretrain.smk (the Snakefile includes them first).
_IN_DOWNSTREAM = plan_inputs("downstream_plan.smk", globals(), "RESULTS", "PRETRAIN_RUNS", "pretrain_checkpoints")
DOWNSTREAM = config["downstream"]

if DOWNSTREAM["pretrain_run"] not in _IN_DOWNSTREAM.PRETRAIN_RUNS:
    raise WorkflowError(f"downstream.pretrain_run {DOWNSTREAM['pretrain_run']!r} is not a pretrain run: {sorted(_IN_DOWNSTREAM.PRETRAIN_RUNS)}")


def zero_shot_checkpoints():
    """The pre-training checkpoints to zero-shot: those listed in the config (all when empty)."""
    available = _IN_DOWNSTREAM.pretrain_checkpoints(DOWNSTREAM["pretrain_run"])
    wanted = [epoch_label(e) for e in DOWNSTREAM["zero_shot_epochs"]] or list(available)
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise WorkflowError(f"downstream.zero_shot_epochs {unknown} are not checkpoints of run {DOWNSTREAM['pretrain_run']!r}: {list(available)}")
    return [available[label] for label in wanted]


# The sweep of the fine-tuning rules (the name in their config) when they are included, else
# downstream.finetune_sweep: evaluate runs fine-tuned elsewhere.
DOWNSTREAM_SWEEP = globals().get("FINETUNE_SWEEP", DOWNSTREAM["finetune_sweep"])


def finetuned_checkpoint(label):
    """last.pt of one fine-tuning run: results/finetune/<sweep>/<label>/checkpoints/last.pt."""
    return _IN_DOWNSTREAM.RESULTS / "finetune" / DOWNSTREAM_SWEEP / label / "checkpoints" / "last.pt"


def dynamics_options(wildcards):
    settings = DOWNSTREAM["dynamics"]
    return " ".join(
        [
            f"--split {settings['split']} --index {settings['index']}",
            f"--steps {settings['steps']} --timestep-fs {settings['timestep_fs']}",
            f"--temperature-k {settings['temperature_k']} --seed {config['seed']}",
            f"--fmax {settings['fmax']} --max-relax-steps {settings['max_relax_steps']}",
        ]
    )
