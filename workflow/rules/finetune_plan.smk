# The fine-tuning plan: run labels, their starting checkpoints and options (rules: finetune.smk).
import re
from pathlib import Path

from lamm.models.pretrained import resolve_checkpoint
from lamm.run_labels import EPOCH_PREFIX, EPOCH_VALUE_PATTERN, SCRATCH, epoch_run_label
from lamm.training.finetune import load_finetune_config

# From common.smk, data.smk and pretrain.smk (the Snakefile includes them first).
_IN = plan_inputs(
    "finetune_plan.smk",
    globals(),
    "RESULTS",
    "DOWNSTREAM_SETS",
    "DOWNSTREAM_STORES",
    "PRETRAIN_RUNS",
    "pretrain_checkpoints",
)
FINETUNE = config["finetune"]
FINETUNE_CONFIG = load_finetune_config(FINETUNE["config"])
FINETUNE_SWEEP = FINETUNE_CONFIG["name"]
FINETUNE_PRETRAIN = FINETUNE["pretrain_run"]
if FINETUNE_PRETRAIN not in _IN.PRETRAIN_RUNS:
    raise WorkflowError(f"finetune.pretrain_run {FINETUNE_PRETRAIN!r} is not a pretrain run ({sorted(_IN.PRETRAIN_RUNS)})")
FINETUNE_CHECKPOINTS = _IN.pretrain_checkpoints(FINETUNE_PRETRAIN)  # {epoch label: path}
FINETUNE_LAST = list(FINETUNE_CHECKPOINTS)[-1]
# The first downstream set is the one the fine-tuning config describes (its data.subset) and
# keeps the paths of a single set. Each further set is fine-tuned with the same config on its
# own store (`lamm finetune --store` takes the store's subset for the new head) and has its own
# run folders and tables, named after it (FINETUNE_SETS).
FINETUNE_FIRST = _IN.DOWNSTREAM_SETS[0].name
FINETUNE_SETS = [item.name for item in _IN.DOWNSTREAM_SETS[1:]]
if FINETUNE_CONFIG["data"]["subset"] != FINETUNE_FIRST:
    raise WorkflowError(
        f"{FINETUNE['config']} fine-tunes on {FINETUNE_CONFIG['data']['subset']!r}, the first downstream set (data.downstream) is {FINETUNE_FIRST!r}: "
        f"list {FINETUNE_CONFIG['data']['subset']!r} first, or give finetune.config a config whose data.subset is {FINETUNE_FIRST!r}"
    )


def finetune_dir(sweep, label, dataset=None):
    """A run folder: results/finetune/<sweep>/<label>/ of the first downstream set, or
    results/finetune/<sweep>/<dataset>/<label>/ of a further set (never a run label: checked below)."""
    return _IN.RESULTS / "finetune" / sweep / (label if dataset is None else Path(dataset, label))


def _efficiency_label(start, fraction):
    """The run folder of a sample-efficiency run; fraction 1 is the sweep run itself."""
    base = SCRATCH if start == SCRATCH else epoch_run_label(start)
    return base if float(fraction) == 1.0 else f"{base}_frac{fraction:g}"


# Seeds of the Table 3 and sample-efficiency runs. The workflow's own seed keeps the bare label
# (results/finetune/<sweep>/scratch, ...: the paths every other stage and user script reads),
# any other seed k runs the same plan in <label>_seed<k> folders with `--seed k`.
FINETUNE_SEEDS = FINETUNE["seeds"]


def _seed_suffix(seed):
    return "" if seed == config["seed"] else f"_seed{seed}"


def _seeded(labels):
    """Every label once per seed, seed-major: scratch, epoch_0, ..., scratch_seed1, ..."""
    return [f"{label}{_seed_suffix(seed)}" for seed in FINETUNE_SEEDS for label in labels]


FINETUNE_STARTS = [SCRATCH, *FINETUNE_CHECKPOINTS]  # scratch, then the epoch labels in order
# Shipped models (finetune.models) start runs named after them, beside the checkpoints.
def _shipped_model(name):
    try:
        return resolve_checkpoint(name)
    except (ValueError, FileNotFoundError) as err:
        raise WorkflowError(f"finetune.models: {err}") from None


FINETUNE_MODELS = {name: _shipped_model(name) for name in FINETUNE["models"]}
# Further pre-training runs of the same recipe, other seeds (finetune.pretrain_replicates): each
# one's checkpoint at the last epoch is fine-tuned with every seed beside the sweep, in
# epoch_<e>_pretrain-<run> folders. Their Table 3 rows carry the same epoch and their own
# pretrain_seed, and the findings pool them with pretrain_run's: the spread covers pre-training.
FINETUNE_REPLICATES = FINETUNE["pretrain_replicates"]
for _run in FINETUNE_REPLICATES:
    if _run not in _IN.PRETRAIN_RUNS or _run == FINETUNE_PRETRAIN:
        raise WorkflowError(f"finetune.pretrain_replicates: {_run!r} is not a further pretrain run ({sorted(set(_IN.PRETRAIN_RUNS) - {FINETUNE_PRETRAIN})})")
    if FINETUNE_LAST not in _IN.pretrain_checkpoints(_run):
        raise WorkflowError(f"finetune.pretrain_replicates: {_run!r} keeps no checkpoint at epoch {FINETUNE_LAST} (pretrain_run {FINETUNE_PRETRAIN!r}'s last)")
    if any(re.fullmatch(rf"{re.escape(_other)}_seed[0-9]+", _run) for _other in FINETUNE_REPLICATES):
        raise WorkflowError(f"finetune.pretrain_replicates: {_run!r} reads as another replicate's seed folder; rename it")
FINETUNE_REPLICATE_LABELS = [f"{epoch_run_label(FINETUNE_LAST)}_pretrain-{run}" for run in FINETUNE_REPLICATES]
FINETUNE_SWEEP_LABELS = _seeded([SCRATCH, *map(epoch_run_label, FINETUNE_CHECKPOINTS), *FINETUNE_REPLICATE_LABELS, *FINETUNE_MODELS])
FINETUNE_EFFICIENCY_STARTS = [SCRATCH, FINETUNE_LAST]  # pre-trained (the last checkpoint) vs scratch
FINETUNE_EFFICIENCY_LABELS = _seeded([_efficiency_label(s, f) for s in FINETUNE_EFFICIENCY_STARTS for f in FINETUNE["fractions"]])
FINETUNE_GRADIENT_LABEL = f"{epoch_run_label(FINETUNE_LAST)}_gradient"  # the MD model: the workflow's seed only
# a label that matches nothing when no model is listed: (?!) never matches
FINETUNE_MODEL_ALTERNATIVES = "|".join(map(re.escape, FINETUNE_MODELS)) or "(?!)"
FINETUNE_REPLICATE_ALTERNATIVES = "|".join(map(re.escape, FINETUNE_REPLICATES)) or "(?!)"
FINETUNE_LABEL = re.compile(
    rf"(?P<start>{SCRATCH}|{EPOCH_PREFIX}(?P<epoch>{EPOCH_VALUE_PATTERN})(?:_pretrain-(?P<replicate>{FINETUNE_REPLICATE_ALTERNATIVES}))?|(?P<model>{FINETUNE_MODEL_ALTERNATIVES}))"
    r"(?:_frac(?P<fraction>[0-9.]+))?(?P<gradient>_gradient)?(?:_seed(?P<seed>[0-9]+))?"
)

# the same without group names (Snakemake reads <name> in a pattern as a path variable)
FINETUNE_LABEL_CONSTRAINT = (
    rf"(?:{SCRATCH}|{EPOCH_PREFIX}{EPOCH_VALUE_PATTERN}(?:_pretrain-(?:{FINETUNE_REPLICATE_ALTERNATIVES}))?|{FINETUNE_MODEL_ALTERNATIVES})"
    r"(?:_frac[0-9.]+)?(?:_gradient)?(?:_seed[0-9]+)?"
)
# a further set's folder sits beside the first set's run folders: it must not look like one
for _name in FINETUNE_SETS:
    if re.fullmatch(FINETUNE_LABEL_CONSTRAINT, _name):
        raise WorkflowError(f"data.downstream: {_name!r} is a fine-tuning run label (scratch, epoch_<e>, ...); name the set otherwise")
FINETUNE_SET_CONSTRAINT = "|".join(map(re.escape, FINETUNE_SETS))


def finetune_run(label):
    """(checkpoint path or None, train fraction, force mode or None, seed) of a run folder label."""
    match = FINETUNE_LABEL.fullmatch(label)
    if match is None:
        raise WorkflowError(f"not a fine-tuning run label: {label!r}")
    epoch, replicate = match["epoch"], match["replicate"]
    checkpoints = pretrain_checkpoints(replicate) if replicate else FINETUNE_CHECKPOINTS
    if epoch is not None and epoch not in checkpoints:
        raise WorkflowError(f"{label}: pre-training run {replicate or FINETUNE_PRETRAIN!r} keeps no checkpoint at epoch {epoch}")
    seed = config["seed"] if match["seed"] is None else int(match["seed"])
    if match["seed"] is not None and seed == config["seed"]:
        # one run, one folder: the workflow's seed is the bare label
        raise WorkflowError(f"{label}: seed {seed} is the workflow's seed, whose runs have no _seed suffix")
    start = FINETUNE_MODELS[match["model"]] if match["model"] else None if epoch is None else checkpoints[epoch]
    return start, float(match["fraction"] or 1.0), "gradient" if match["gradient"] else None, seed


def finetune_seed(wildcards):
    return finetune_run(wildcards.label)[3]


def finetune_inputs(wildcards):
    start, _, _, _ = finetune_run(wildcards.label)
    store = _IN.DOWNSTREAM_STORES[wildcards.get("dataset", FINETUNE_FIRST)]
    return {"store": store, "config": FINETUNE["config"], **({"checkpoint": start} if start else {})}


def finetune_options(wildcards):
    start, fraction, force_mode, _ = finetune_run(wildcards.label)
    options = [f"--checkpoint {start or 'scratch'}", f"--train-fraction {fraction}"]
    if force_mode:
        options.append(f"--force-mode {force_mode}")
    return " ".join(options)


def _run_dirs(labels, dataset=None):
    return [finetune_dir(FINETUNE_SWEEP, label, dataset) for label in labels]


def _run_files(labels, dataset=None):
    return [run / name for run in _run_dirs(labels, dataset) for name in ("summary.json", "test_metrics.json", "validation.csv")]
