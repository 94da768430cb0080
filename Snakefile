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
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/umap.smk"
include: "workflow/rules/report.smk"  # last: it collects every other output


rule all:
    input:
        ALL_OUTPUTS,
    default_target: True
