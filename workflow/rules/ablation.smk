# Denoising ablation (LaMM Fig. 7): the denoising subset alone, baseline vs relative noise labels,
# same base trainer config, seed and budget. One single-rank job per mode (they run side by side),
# then a small summary job: results/tables/denoising.csv, results/figures/fig7_denoising.png and
# the epochs-to-threshold ratio. Settings: config section ablation_denoising.
ABLATION = config["ablation_denoising"]
ABLATION_DIR = RESULTS / "ablation" / "denoising"
ABLATION_MODES = ["baseline", "relative"]

if ABLATION["subset"] not in config["data"]["subsets"]:
    raise WorkflowError(
        f"ablation_denoising.subset {ABLATION['subset']!r} is not a pre-training subset the data stage makes "
        f"(data.subsets: {config['data']['subsets']})"
    )


rule ablation_denoising:
    input:
        store=DATA_DIR / f"{ABLATION['subset']}.lmdb",
        config=ABLATION["config"],
    output:
        validation=ABLATION_DIR / "{mode}" / "validation.csv",
        summary=ABLATION_DIR / "{mode}" / "summary.json",
    log:
        LOGS / "ablation_denoising_{mode}.log",
    wildcard_constraints:
        mode="baseline|relative",
    params:
        data=DATA_DIR,
        out=ABLATION_DIR,
        options=(
            f"--subset {ABLATION['subset']} --epochs {ABLATION['epochs']} --batch-per-rank {ABLATION['batch_per_rank']} "
            f"--val-every-steps {ABLATION['val_every_steps']} --val-max-samples {ABLATION['val_max_samples']} --seed {config['seed']}"
        ),
    threads: 1
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} ablation denoising"
        " --config {input.config} --data {params.data} --out {params.out} --modes {wildcards.mode} {params.options} > {log} 2>&1"


rule ablation_denoising_summary:
    input:
        validation=expand(ABLATION_DIR / "{mode}" / "validation.csv", mode=ABLATION_MODES),
    output:
        table=RESULTS / "tables" / "denoising.csv",
        figure=RESULTS / "figures" / "fig7_denoising.png",
        summary=RESULTS / "tables" / "denoising_summary.json",
    log:
        LOGS / "ablation_denoising_summary.log",
    params:
        runs=" ".join(f"--run {mode}={ABLATION_DIR / mode}" for mode in ABLATION_MODES),
        subset=ABLATION["subset"],
        threshold=ABLATION["threshold_a"],
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} ablation denoising-summary"
        " {params.runs} --subset {params.subset} --threshold {params.threshold}"
        " --table {output.table} --figure {output.figure} --summary {output.summary} > {log} 2>&1"


ALL_OUTPUTS.extend(rules.ablation_denoising_summary.output)
