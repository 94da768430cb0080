# Measured DDP throughput of the samplers (LaMM Fig. 6): real training steps of a pre-training run's
# model, launched like the pre-training itself (config pretrain.launcher: 2 CPU ranks in the demo,
# the GPUs of the cluster at paper scale), plus the balance simulation calibrated on those steps.
# Settings: config section bench_throughput (workflow/schemas/config.schema.yaml).

THROUGHPUT = config["bench_throughput"]
if THROUGHPUT["run"] not in PRETRAIN_CONFIGS:
    raise WorkflowError(f"bench_throughput.run {THROUGHPUT['run']!r} is not a pretrain run: {sorted(PRETRAIN_CONFIGS)}")
THROUGHPUT_OPTIONS = " ".join(
    [
        "--datasets " + " ".join(THROUGHPUT["datasets"]),
        "--samplers " + " ".join(THROUGHPUT["samplers"]),
        "--batch-per-rank " + " ".join(map(str, THROUGHPUT["batch_per_rank"])),
        f"--capped-batch {THROUGHPUT['capped_batch'] or 0}",
        f"--cap-reference-batch {THROUGHPUT['cap_reference_batch']}",
        "" if THROUGHPUT["random_at_capped_batch"] else "--no-random-at-capped-batch",
        f"--steps {THROUGHPUT['steps']}",
        f"--warmup {THROUGHPUT['warmup']}",
        f"--group-steps {THROUGHPUT['group_steps']}",
        f"--repeats {THROUGHPUT['repeats']}",
        f"--budget-minutes {THROUGHPUT['budget_minutes']}" if THROUGHPUT["budget_minutes"] else "",
        "--scaling-world-sizes " + " ".join(map(str, THROUGHPUT["scaling_world_sizes"])),
        f"--scaling-epochs {THROUGHPUT['scaling_epochs']}",
        f"--threads-per-rank {THROUGHPUT['threads_per_rank']}",
        f"--seed {config['seed']}",
        launcher_options(),
    ]
)


rule bench_throughput:
    input:
        stores=[DATA_DIR / f"{s}.lmdb" for s in PRETRAIN_RUNS[THROUGHPUT["run"]]["data"]["subsets"]],
        config=PRETRAIN_CONFIGS[THROUGHPUT["run"]],
        # the pre-training run fits the normalization statistics the benchmark reuses (cached
        # beside the stores), and the two never compete for the cores
        pretrain=pretrain_dir(THROUGHPUT["run"]) / "summary.json",
    output:
        table=RESULTS / "tables" / "throughput.csv",
        scaling=RESULTS / "tables" / "throughput_scaling.csv",
        figure=RESULTS / "figures" / "fig6_step_time.png",
    log:
        LOGS / "bench_throughput.log",
    params:
        data=DATA_DIR,
        work=RESULTS / "bench" / "throughput",
        options=THROUGHPUT_OPTIONS,
    localrule: True  # it submits its ranks itself, like the pre-training rule
    threads: LAUNCHER["ranks_per_node"] * THROUGHPUT["threads_per_rank"] if LAUNCHER["executor"] == "local" else 1
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} bench throughput --config {{input.config}} --data {{params.data}} {{params.options}}"
        " --work-dir {params.work} --out {output.table} --scaling-out {output.scaling} --figure {output.figure} > {log} 2>&1"


ALL_OUTPUTS.extend([rules.bench_throughput.output.table, rules.bench_throughput.output.scaling, rules.bench_throughput.output.figure])
