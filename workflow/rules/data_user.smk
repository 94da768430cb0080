# A user's own downstream dataset (a data.downstream entry {name: NAME, dataset: FILE}):
# `lamm data convert --dataset FILE` makes {RESULTS}/data/NAME.lmdb, whatever data.source is.
# The description and the files it names are inputs, so editing either reruns the conversion;
# the description's own split settings decide train/val/test (lamm/data/user_dataset.py).
import re

from lamm.downstream_sets import description_files

if USER_DOWNSTREAM:

    rule data_convert_user:
        input:
            description=lambda wildcards: USER_DOWNSTREAM[wildcards.dataset].description,
            files=lambda wildcards: description_files(USER_DOWNSTREAM[wildcards.dataset].description),
        output:
            store=DATA_DIR / "{dataset}.lmdb",
        log:
            LOGS / "data" / "convert_{dataset}.log",
        wildcard_constraints:
            dataset="|".join(map(re.escape, USER_DOWNSTREAM)),
        conda:
            LAMM_ENV
        shell:
            f"lamm {LAMM_TAGS} data convert --dataset {{input.description}} --out {{output.store}} > {{log}} 2>&1"

    ALL_OUTPUTS.extend(expand(rules.data_convert_user.output.store, dataset=list(USER_DOWNSTREAM)))
