# Benchmarks of the data path: the load-balance simulation of the samplers on the pre-training
# stores (temperature-sampled as in training) and the throughput of stores -> Batch objects.
# Settings: config sections bench_balance and bench_batching (workflow/schemas/config.schema.yaml).

def balance_options(wildcards):
    settings = config["bench_balance"]
    temperature = "--no-temperature" if settings["temperature"] is None else f"--temperature {settings['temperature']}"
    return " ".join(
        [
            temperature,
            "--world-sizes " + " ".join(map(str, settings["world_sizes"])),
            "--batch-per-rank " + " ".join(map(str, settings["batch_per_rank"])),
            f"--num-splits {settings['num_splits']}",
            f"--epochs {settings['epochs']}",
            f"--work {settings['work']}",
            f"--cutoff {settings['cutoff']}",
            f"--seed {config['seed']}",
        ]
    )


def batching_options(wildcards):
    settings = config["bench_batching"]
    return " ".join(
        [
            "--workers " + " ".join(map(str, settings["workers"])),
            f"--batch-size {settings['batch_size']}",
            f"--batches {settings['batches']}",
            f"--cutoff {settings['cutoff']}",
            f"--max-neighbors {settings['max_neighbors'] or 0}",
            f"--seed {config['seed']}",
        ]
    )


rule bench_balance:
    input:
        stores=PRETRAIN_STORES,
    output:
        table=RESULTS / "tables" / "balance_simulation.csv",
    conda:
        CONDA_ENV
    log:
        LOGS / "bench_balance.log",
    params:
        options=balance_options,
    shell:
        "lamm " + LAMM_TAGS + " bench balance --stores {input.stores} {params.options} "
        "--out {output.table} > {log} 2>&1"


rule bench_batching:
    input:
        stores=PRETRAIN_STORES,
    output:
        table=RESULTS / "tables" / "batching_throughput.csv",
    conda:
        CONDA_ENV
    log:
        LOGS / "bench_batching.log",
    params:
        options=batching_options,
    threads: 3  # the main process and two DataLoader workers
    shell:
        "lamm " + LAMM_TAGS + " bench batching --stores {input.stores} {params.options} "
        "--out {output.table} > {log} 2>&1"


ALL_OUTPUTS.extend([rules.bench_balance.output.table, rules.bench_batching.output.table])
