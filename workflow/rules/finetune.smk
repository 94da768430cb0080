# Fine-tuning on the downstream subset (SPEC section 8, Table 3, Fig. 9) and sample efficiency.
# One `finetune` job per run folder results/finetune/<sweep>/<label>/ (sweep = the fine-tuning
# config's name), label = scratch | epoch_<e> | <scratch|epoch_e>_frac<f> | epoch_<e>_gradient:
# from scratch and from every checkpoint of the configured pre-training run with the same budget
# and seed, repeated for each further seed k of finetune.seeds in <label>_seed<k> folders (the
# workflow's seed keeps the bare label); the sample-efficiency runs on fractions of the training
# split (fraction 1 is the sweep run itself); one run with conservative (gradient) forces for the MD of the evaluation
# stage. Every run is nested under one MLflow parent run named after the sweep.
# Each further downstream set NAME (data.downstream after the first) repeats the sweep and the
# sample-efficiency runs on its own store, under results/finetune/<sweep>/NAME/<label>/ (parent
# run <sweep>/NAME), with NAME-suffixed tables and figures: the *_further rules below.
# The plan (labels, checkpoints, options) is in finetune_plan.smk.

rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        model=RESULTS / "finetune" / "{sweep}" / "{label}" / "checkpoints" / "last.pt",
        validation=RESULTS / "finetune" / "{sweep}" / "{label}" / "validation.csv",
        metrics=RESULTS / "finetune" / "{sweep}" / "{label}" / "metrics.csv",
        summary=RESULTS / "finetune" / "{sweep}" / "{label}" / "summary.json",
        test=RESULTS / "finetune" / "{sweep}" / "{label}" / "test_metrics.json",
    log:
        LOGS / "finetune_{sweep}_{label}.log",
    wildcard_constraints:
        sweep=re.escape(FINETUNE_SWEEP),
        label=FINETUNE_LABEL_CONSTRAINT,
    params:
        out=lambda wildcards: finetune_dir(wildcards.sweep, wildcards.label),
        options=finetune_options,
        seed=finetune_seed,  # the workflow's seed, or k of a <label>_seed<k> folder
        parent=lambda wildcards: wildcards.sweep,
    threads: 1
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} finetune"
        " --config {input.config} --store {input.store} --out {params.out}"
        " {params.options} --seed {params.seed} --parent-run {params.parent} --launcher none --resume > {log} 2>&1"


rule finetune_table:
    input:
        runs=_run_files(FINETUNE_SWEEP_LABELS),
    output:
        table=RESULTS / "tables" / "table3_finetune.csv",
        summary=RESULTS / "tables" / "table3_summary.csv",  # per checkpoint over the seeds
        figure=RESULTS / "figures" / "fig9_finetune.png",
    log:
        LOGS / "finetune_table.log",
    params:
        runs=" ".join(map(str, _run_dirs(FINETUNE_SWEEP_LABELS))),
        energy=FINETUNE["thresholds"]["energy_mev_per_atom"],
        forces=FINETUNE["thresholds"]["forces_mev_per_a"],
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} summarize finetune"
        " {params.runs} --energy-threshold {params.energy}"
        " --forces-threshold {params.forces} --table {output.table} --summary {output.summary}"
        " --figure {output.figure} > {log} 2>&1"


rule finetune_sample_efficiency:
    input:
        runs=_run_files(FINETUNE_EFFICIENCY_LABELS),
    output:
        table=RESULTS / "tables" / "sample_efficiency.csv",
        summary=RESULTS / "tables" / "sample_efficiency_summary.csv",  # per checkpoint and fraction over the seeds
        figure=RESULTS / "figures" / "sample_efficiency.png",
    log:
        LOGS / "finetune_sample_efficiency.log",
    params:
        runs=" ".join(map(str, _run_dirs(FINETUNE_EFFICIENCY_LABELS))),
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} summarize sample-efficiency"
        " {params.runs} --table {output.table} --summary {output.summary} --figure {output.figure} > {log} 2>&1"


ALL_OUTPUTS.extend(
    [
        *rules.finetune_table.output,
        *rules.finetune_sample_efficiency.output,
        finetune_dir(FINETUNE_SWEEP, FINETUNE_GRADIENT_LABEL) / "checkpoints" / "last.pt",
    ]
)


if FINETUNE_SETS:

    use rule finetune as finetune_further with:
        output:
            model=RESULTS / "finetune" / "{sweep}" / "{dataset}" / "{label}" / "checkpoints" / "last.pt",
            validation=RESULTS / "finetune" / "{sweep}" / "{dataset}" / "{label}" / "validation.csv",
            metrics=RESULTS / "finetune" / "{sweep}" / "{dataset}" / "{label}" / "metrics.csv",
            summary=RESULTS / "finetune" / "{sweep}" / "{dataset}" / "{label}" / "summary.json",
            test=RESULTS / "finetune" / "{sweep}" / "{dataset}" / "{label}" / "test_metrics.json",
        log:
            LOGS / "finetune_{sweep}_{dataset}_{label}.log",
        wildcard_constraints:
            sweep=re.escape(FINETUNE_SWEEP),
            dataset=FINETUNE_SET_CONSTRAINT,
            label=FINETUNE_LABEL_CONSTRAINT,
        params:
            out=lambda wildcards: finetune_dir(wildcards.sweep, wildcards.label, wildcards.dataset),
            parent=lambda wildcards: f"{wildcards.sweep}/{wildcards.dataset}",

    use rule finetune_table as finetune_table_further with:
        input:
            runs=lambda wildcards: _run_files(FINETUNE_SWEEP_LABELS, wildcards.dataset),
        output:
            table=RESULTS / "tables" / "table3_finetune_{dataset}.csv",
            summary=RESULTS / "tables" / "table3_summary_{dataset}.csv",
            figure=RESULTS / "figures" / "fig9_finetune_{dataset}.png",
        log:
            LOGS / "finetune_table_{dataset}.log",
        wildcard_constraints:
            dataset=FINETUNE_SET_CONSTRAINT,
        params:
            runs=lambda wildcards: " ".join(map(str, _run_dirs(FINETUNE_SWEEP_LABELS, wildcards.dataset))),

    use rule finetune_sample_efficiency as finetune_sample_efficiency_further with:
        input:
            runs=lambda wildcards: _run_files(FINETUNE_EFFICIENCY_LABELS, wildcards.dataset),
        output:
            table=RESULTS / "tables" / "sample_efficiency_{dataset}.csv",
            summary=RESULTS / "tables" / "sample_efficiency_summary_{dataset}.csv",
            figure=RESULTS / "figures" / "sample_efficiency_{dataset}.png",
        log:
            LOGS / "finetune_sample_efficiency_{dataset}.log",
        wildcard_constraints:
            dataset=FINETUNE_SET_CONSTRAINT,
        params:
            runs=lambda wildcards: " ".join(map(str, _run_dirs(FINETUNE_EFFICIENCY_LABELS, wildcards.dataset))),

    ALL_OUTPUTS.extend(
        expand(
            [*rules.finetune_table_further.output, *rules.finetune_sample_efficiency_further.output],
            dataset=FINETUNE_SETS,
        )
    )
