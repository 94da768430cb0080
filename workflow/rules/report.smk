# The report: one HTML page with every table and figure, the configs, and links to the MLflow
# runs. Included last: it waits for everything the other stages add to ALL_OUTPUTS.

# the workflow configs, the pre-training configs, and the descriptions of the user's own datasets
REPORT_CONFIGS = sorted(
    {str(path) for path in workflow.configfiles}
    | set(PRETRAIN_CONFIGS.values())
    | {str(item.description) for item in DOWNSTREAM_SETS if item.description is not None}
)


rule report:
    input:
        results=list(ALL_OUTPUTS),
        configs=REPORT_CONFIGS,
    output:
        html=RESULTS / "report.html",
    log:
        LOGS / "report.log",
    params:
        results=RESULTS,
        configs=lambda wildcards, input: " ".join(f"--config {path}" for path in input.configs),
        downstream=" ".join(item.name for item in DOWNSTREAM_SETS),  # one Table 3 per set, in order
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} report"
        " --results {params.results} --out {output.html} {params.configs} --downstream {params.downstream} > {log} 2>&1"


ALL_OUTPUTS.append(rules.report.output.html)
