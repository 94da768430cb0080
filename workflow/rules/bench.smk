# Benchmarks of the data path: the load-balance simulation of the samplers on the pre-training
# stores (temperature-sampled as in training) and the throughput of stores -> Batch objects.
# Settings: config sections bench_balance and bench_batching (workflow/schemas/config.schema.yaml).

rule bench_balance:
    input:
        stores=PRETRAIN_STORES,
    output:
        table=RESULTS / "tables" / "balance_simulation.csv",
    log:
        LOGS / "bench_balance.log",
    params:
        options=balance_options,
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} bench balance"
        " --stores {input.stores} {params.options}"
        " --out {output.table} > {log} 2>&1"


rule bench_batching:
    input:
        stores=PRETRAIN_STORES,
    output:
        table=RESULTS / "tables" / "batching_throughput.csv",
    log:
        LOGS / "bench_batching.log",
    params:
        options=batching_options,
    threads: 3  # the main process and two DataLoader workers
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} bench batching"
        " --stores {input.stores} {params.options}"
        " --out {output.table} > {log} 2>&1"


ALL_OUTPUTS.extend([rules.bench_balance.output.table, rules.bench_batching.output.table])
