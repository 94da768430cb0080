# The downstream set beyond fine-tuning: zero-shot of every pre-training head (energy reference
# refit only, as deepmd's change-bias), test-set evaluation of fine-tuned models with parity
# plots, and the ASE calculator in use (BFGS relaxation + NVE drift). Settings: config section
# `downstream` (workflow/schemas/config.schema.yaml). Fine-tuned checkpoints are read from the
# fine-tuning layout results/finetune/<sweep>/<label>/checkpoints/last.pt. Zero-shot runs on
# every downstream set (zero_shot_<NAME>.csv for a set after the first); evaluation and dynamics
# on the first set only.

# The plan (checkpoints, options) is in downstream_plan.smk.


rule zero_shot:
    input:
        checkpoints=zero_shot_checkpoints(),
        store=DOWNSTREAM_STORE,
    output:
        table=RESULTS / "tables" / "zero_shot.csv",
    log:
        LOGS / "zero_shot.log",
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} zero-shot"
        " {input.checkpoints} --store {input.store} --out {output.table} > {log} 2>&1"


rule evaluate_finetuned:
    input:
        checkpoint=lambda wildcards: finetuned_checkpoint(wildcards.label),
        store=DOWNSTREAM_STORE,
    output:
        metrics=RESULTS / "evaluate" / "{label}" / "metrics.json",
        parity=RESULTS / "evaluate" / "{label}" / "parity.png",
        predictions=RESULTS / "evaluate" / "{label}" / "predictions.npz",
    log:
        LOGS / "evaluate_{label}.log",
    params:
        out=lambda wildcards, output: Path(output.metrics).parent,
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} evaluate"
        " {input.checkpoint} --store {input.store} --split test"
        " --out {params.out} > {log} 2>&1"


rule dynamics:
    input:
        checkpoint=finetuned_checkpoint(DOWNSTREAM["dynamics"]["label"]),
        store=DOWNSTREAM_STORE,
    output:
        summary=RESULTS / "dynamics" / DOWNSTREAM["dynamics"]["label"] / "summary.json",
        energies=RESULTS / "dynamics" / DOWNSTREAM["dynamics"]["label"] / "energies.csv",
        figure=RESULTS / "dynamics" / DOWNSTREAM["dynamics"]["label"] / "energies.png",
        trajectory=RESULTS / "dynamics" / DOWNSTREAM["dynamics"]["label"] / "nve.traj",
        table=RESULTS / "tables" / "nve_drift.csv",
    log:
        LOGS / "dynamics.log",
    params:
        out=lambda wildcards, output: Path(output.summary).parent,
        options=dynamics_options,
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} dynamics"
        " {input.checkpoint} --store {input.store} {params.options}"
        " --out {params.out} --table {output.table} > {log} 2>&1"


ALL_OUTPUTS.extend(
    [
        rules.zero_shot.output.table,
        *[RESULTS / "evaluate" / label / name for label in DOWNSTREAM["evaluate"] for name in ("metrics.json", "parity.png")],
        rules.dynamics.output.summary,
        rules.dynamics.output.figure,
        rules.dynamics.output.table,
    ]
)


if len(DOWNSTREAM_SETS) > 1:

    use rule zero_shot as zero_shot_further with:
        input:
            checkpoints=zero_shot_checkpoints(),
            store=lambda wildcards: DOWNSTREAM_STORES[wildcards.dataset],
        output:
            table=RESULTS / "tables" / "zero_shot_{dataset}.csv",
        log:
            LOGS / "zero_shot_{dataset}.log",
        wildcard_constraints:
            dataset="|".join(re.escape(item.name) for item in DOWNSTREAM_SETS[1:]),

    ALL_OUTPUTS.extend(expand(rules.zero_shot_further.output.table, dataset=[item.name for item in DOWNSTREAM_SETS[1:]]))
