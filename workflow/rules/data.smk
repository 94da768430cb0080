# Data stage. Stores live at {RESULTS}/data/<subset>.lmdb whatever made them: the offline demo
# below (data.source: demo) or the fetch/convert rules of the real releases (data.source: real).
# Later stages take their inputs from PRETRAIN_STORES (in head order) and DOWNSTREAM_STORES
# (one per downstream set, in config order; DOWNSTREAM_STORE is the first set's). A user's own
# downstream dataset is converted by data_user.smk.
# Shell commands start with an f-string only to splice in LAMM_TAGS (whose {rule} and
# {wildcards} Snakemake fills in); the rest are plain Snakemake templates.
from lamm.data.sources import SOURCE_NAMES
from lamm.downstream_sets import downstream_sets

DATA_DIR = RESULTS / "data"
PRETRAIN_STORES = [DATA_DIR / f"{subset}.lmdb" for subset in config["data"]["subsets"]]
try:
    DOWNSTREAM_SETS = downstream_sets(config["data"]["downstream"], reserved=SOURCE_NAMES)
except ValueError as err:
    raise WorkflowError(str(err)) from None
DOWNSTREAM_STORES = {item.name: DATA_DIR / f"{item.name}.lmdb" for item in DOWNSTREAM_SETS}
DOWNSTREAM_STORE = DOWNSTREAM_STORES[DOWNSTREAM_SETS[0].name]
BUILTIN_DOWNSTREAM = [item.name for item in DOWNSTREAM_SETS if item.description is None]
USER_DOWNSTREAM = {item.name: item for item in DOWNSTREAM_SETS if item.description is not None}
# The stores the data stage makes and Table 2 describes: a user's dataset is left out of both.
DATA_STORES = [*PRETRAIN_STORES, *(DOWNSTREAM_STORES[name] for name in BUILTIN_DOWNSTREAM)]


if config["data"]["source"] == "demo":

    # One job for all subsets: it labels in a pool over all its threads and balances the
    # expensive families (MOFs, slabs, periodic xTB) against the cheap molecules itself.
    rule data_demo:
        output:
            stores=DATA_STORES,
            summary=DATA_DIR / "demo_summary.json",
        log:
            LOGS / "data_demo.log",
        params:
            out=DATA_DIR,
            scale=config["data"]["scale"],
            labels=config["data"]["labels"],
            seed=config["seed"],
            subsets=" ".join([*config["data"]["subsets"], *BUILTIN_DOWNSTREAM]),
        threads: workflow.cores
        conda:
            LAMM_ENV
        shell:
            f"lamm {LAMM_TAGS} data demo"
            " --out {params.out} --scale {params.scale} --labels {params.labels}"
            " --seed {params.seed} --workers {threads}"
            " --subsets {params.subsets} > {log} 2>&1"


rule data_stats:
    input:
        stores=DATA_STORES,
    output:
        table=RESULTS / "tables" / "table2_datasets.csv",
        fig2=RESULTS / "figures" / "fig2_elements.png",
        fig4=RESULTS / "figures" / "fig4_natoms.png",
    log:
        LOGS / "data_stats.log",
    params:
        out=RESULTS,
        seed=config["seed"],
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} data stats"
        " {input.stores} --out {params.out} --seed {params.seed} > {log} 2>&1"


ALL_OUTPUTS.extend([rules.data_stats.output.table, rules.data_stats.output.fig2, rules.data_stats.output.fig4])
