# The real-data path (config data.source: real): fetch each source's release files into
# <data.raw_dir>/<source>/, then convert them into {RESULTS}/data/<subset>.lmdb. The rules only
# call the `lamm` CLI; what to fetch and where the unpacked inputs lie come from
# config/datasets/<source>.yaml, overridable under data.real (lamm/data/real_workflow.py).
from lamm.data.real_workflow import convert_arguments, fetch_arguments, fetch_message

if config["data"]["source"] == "real":
    RAW = Path(config["data"]["raw_dir"])
    REAL_SUBSETS = [*config["data"]["subsets"], *BUILTIN_DOWNSTREAM]

    rule data_fetch:
        output:
            manifest=RAW / "{subset}" / "fetch-manifest.json",
        log:
            LOGS / "data" / "fetch_{subset}.log",
        wildcard_constraints:
            subset="|".join(REAL_SUBSETS),
        params:
            dest=lambda wildcards: RAW / wildcards.subset,
            args=lambda wildcards: fetch_arguments(config["data"]["real"], wildcards.subset),
            plan=lambda wildcards: fetch_message(config["data"]["real"], wildcards.subset),
        message:
            "{params.plan}"
        conda:
            LAMM_ENV
        shell:
            f"lamm {LAMM_TAGS} data fetch {{wildcards.subset}} --dest {{params.dest}} {{params.args}} > {{log}} 2>&1"

    rule data_convert:
        input:
            manifest=rules.data_fetch.output.manifest,
        output:
            store=RESULTS / "data" / "{subset}.lmdb",
        log:
            LOGS / "data" / "convert_{subset}.log",
        wildcard_constraints:
            subset="|".join(REAL_SUBSETS),
        params:
            args=lambda wildcards: convert_arguments(config["data"]["real"], wildcards.subset, RAW, config["seed"]),
        conda:
            LAMM_ENV
        shell:
            f"lamm {LAMM_TAGS} data convert {{wildcards.subset}} {{params.args}} --out {{output.store}} > {{log}} 2>&1"

    ALL_OUTPUTS.extend(expand(rules.data_convert.output.store, subset=REAL_SUBSETS))
