# Your own data, and nothing of the demo: convert -> fine-tune -> evaluate, three jobs.
#
#   snakemake -s workflow/own_data.smk --cores 2 --config dataset=my_set.yaml
#   snakemake -s workflow/own_data.smk --cores 2 --configfile config/own_data.yaml
#
# `dataset` is a description YAML (lamm/data/user_dataset.schema.yaml: name, format - auto reads
# VASP, QE, CP2K, extxyz, deepmd ... -, files, split); the other keys and their defaults are in
# config/own_data.yaml. Outputs: {results}/data/NAME.lmdb, {results}/finetune/NAME/ (checkpoints,
# validation.csv with the stress MAE where the data has stress, test_metrics.json) and
# {results}/evaluate/NAME/metrics.json. docs/own-data.md walks through it.
from pathlib import Path

from lamm.data.user_dataset import load_user_dataset
from lamm.downstream_sets import description_files


configfile: Path(workflow.basedir).parent / "config" / "own_data.yaml"


if not config.get("dataset"):
    raise WorkflowError("own_data.smk: pass --config dataset=my_set.yaml (a dataset description)")

DESCRIPTION = Path(config["dataset"])
NAME = load_user_dataset(DESCRIPTION).name
RESULTS = Path(config["results"])
RUN = RESULTS / "finetune" / NAME
FINETUNE_OPTIONS = " ".join(
    option
    for option in (
        f"--config {config['finetune_config']}" if config.get("finetune_config") else "",
        f"--carve-test {config['carve_test']}" if config.get("carve_test") else "",
        f"--carve-val {config['carve_val']}" if config.get("carve_val") else "",
        f"--lambda-stress {config['lambda_stress']}" if config.get("lambda_stress") is not None else "",
        f"--force-mode {config['force_mode']}" if config.get("force_mode") else "",
    )
    if option
)


rule all:
    input:
        RESULTS / "evaluate" / NAME / "metrics.json",
    default_target: True


rule convert:
    input:
        description=DESCRIPTION,
        files=description_files(DESCRIPTION),
    output:
        store=RESULTS / "data" / f"{NAME}.lmdb",
    log:
        RESULTS / "logs" / f"convert_{NAME}.log",
    shell:
        "lamm data convert --dataset {input.description} --out {output.store} > {log} 2>&1"


rule finetune:
    input:
        store=rules.convert.output.store,
    output:
        model=RUN / "checkpoints" / "last.pt",
        test=RUN / "test_metrics.json",
    log:
        RESULTS / "logs" / f"finetune_{NAME}.log",
    params:
        checkpoint=config["checkpoint"],
        device=config["device"],
        options=FINETUNE_OPTIONS,
        out=RUN,
    threads: 1
    shell:
        "lamm finetune --checkpoint {params.checkpoint} --store {input.store} --out {params.out}"
        " --device {params.device} {params.options} --resume > {log} 2>&1"


rule evaluate:
    input:
        model=rules.finetune.output.model,
        store=rules.convert.output.store,
    output:
        metrics=RESULTS / "evaluate" / NAME / "metrics.json",
    log:
        RESULTS / "logs" / f"evaluate_{NAME}.log",
    params:
        out=RESULTS / "evaluate" / NAME,
        device=config["device"],
    shell:
        "lamm evaluate {input.model} --store {input.store} --split test --out {params.out}"
        " --device {params.device} > {log} 2>&1"
