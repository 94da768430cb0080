# UMAP of the per-atom representations of a pre-trained checkpoint (LaMM Fig. 8): N atoms per
# subset, four panels, the embedding saved. Settings: config section umap.
UMAP = config["umap"]
UMAP_RUN = UMAP["pretrain_run"] or next(iter(PRETRAIN_RUNS))
if UMAP_RUN not in PRETRAIN_RUNS:
    raise WorkflowError(f"umap.pretrain_run {UMAP_RUN!r} is not a pretrain run (pretrain.runs: {sorted(PRETRAIN_RUNS)})")
# The run's last fractional-epoch checkpoint (the end of pre-training) unless one is chosen.
UMAP_CHECKPOINTS = pretrain_checkpoints(UMAP_RUN)
UMAP_EPOCH = UMAP["checkpoint_epoch"] or list(UMAP_CHECKPOINTS)[-1]
if UMAP_EPOCH not in UMAP_CHECKPOINTS:
    raise WorkflowError(f"umap.checkpoint_epoch {UMAP_EPOCH!r} is not a checkpoint of {UMAP_RUN} ({list(UMAP_CHECKPOINTS)})")
UMAP_SUBSETS = UMAP["subsets"] or [s for s in config["data"]["subsets"] if not s.endswith("_is2re")]


UMAP_OPTIONS = " ".join(
    [
        "--subsets " + " ".join(UMAP_SUBSETS),
        f"--atoms-per-subset {UMAP['atoms_per_subset']} --n-neighbors {UMAP['n_neighbors']}",
        f"--n-epochs {UMAP['n_epochs']} --min-dist {UMAP['min_dist']} --seed {config['seed']}",
        f"--ellipse-subset {UMAP['ellipse_subset']}" if UMAP["ellipse_subset"] else "",
        "--ellipse-elements " + " ".join(UMAP["ellipse_elements"]) if UMAP["ellipse_elements"] else "",
    ]
)


rule umap:
    input:
        checkpoint=UMAP_CHECKPOINTS[UMAP_EPOCH],
        stores=[DATA_DIR / f"{subset}.lmdb" for subset in UMAP_SUBSETS],
    output:
        embedding=RESULTS / "umap" / "embedding.csv",
        summary=RESULTS / "umap" / "summary.json",
        figure=RESULTS / "figures" / "fig8_umap.png",
    log:
        LOGS / "umap.log",
    params:
        data=DATA_DIR,
        out=RESULTS / "umap",
        options=UMAP_OPTIONS,
    threads: 1
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} umap"
        " {input.checkpoint} --data {params.data} {params.options} --out {params.out} --figure {output.figure} > {log} 2>&1"


ALL_OUTPUTS.extend([rules.umap.output.figure, rules.umap.output.embedding])
