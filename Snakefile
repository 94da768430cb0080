# LaMM workflow: data -> labels/noise -> load-balanced pre-training -> checkpoint-wise
# fine-tuning -> benchmarks -> UMAP -> report. Every rule calls the `lamm` CLI.
#
#   snakemake --cores all                                    # the offline demo (config/config.yaml)
#   snakemake --configfile config/paper.yaml --workflow-profile config/profiles/slurm
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# Stage rule files are included here, in DAG order; each appends to ALL_OUTPUTS.
include: "workflow/rules/data.smk"
include: "workflow/rules/data_real.smk"
include: "workflow/rules/data_user.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/finetune_plan.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/downstream_plan.smk"
include: "workflow/rules/downstream.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/throughput.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/umap.smk"
include: "workflow/rules/report.smk"  # last: it collects every other output


rule all:
    input:
        ALL_OUTPUTS,
    default_target: True


# Rule names are fixed once the workflow is parsed: write them into the shell commands (the
# `snakemake_rule` tag of LAMM_TAGS) as constants, so each job's command line says which rule
# ran it without referring to a variable from outside the rule.
for _rule in workflow.rules:
    if _rule.shellcmd:
        _rule.shellcmd = _rule.shellcmd.replace("{rule}", _rule.name)
