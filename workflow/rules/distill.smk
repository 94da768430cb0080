# Distillation (DPA-2): a small gradient-force student from a fine-tuned teacher, for
# long MD. Teacher = the fine-tuning run distill.teacher_label; seed structures and the
# teacher's reference labels = the first downstream store. One folder per teacher,
# results/distill/<teacher_label>/; a rerun resumes its finished rounds. Config section
# `distill` (off by default; workflow/schemas/config.schema.yaml).

DISTILL = config["distill"]
DISTILL_DIR = RESULTS / "distill" / DISTILL["teacher_label"]
DISTILL_ENABLED = DISTILL["enabled"] in (True, "true")  # --config passes nested values as strings


rule distill:
    input:
        teacher=finetuned_checkpoint(DISTILL["teacher_label"]),
        store=DOWNSTREAM_STORE,
        config=DISTILL["config"],
    output:
        student=DISTILL_DIR / "student.pt",
        rounds=DISTILL_DIR / "rounds.csv",
        final=DISTILL_DIR / "final.json",
        parity=DISTILL_DIR / "parity.png",
        rounds_figure=DISTILL_DIR / "rounds.png",
        speed=DISTILL_DIR / "speed.png",
    log:
        LOGS / "distill.log",
    params:
        out=DISTILL_DIR,
        rounds=int(DISTILL["rounds"]),
        seed=config["seed"],
    threads: 1
    conda:
        LAMM_ENV
    shell:
        f"lamm {LAMM_TAGS} distill"
        " --teacher {input.teacher} --student-config {input.config} --seed-structures {input.store}"
        " --out {params.out} --rounds {params.rounds} --seed {params.seed} > {log} 2>&1"


if DISTILL_ENABLED:
    ALL_OUTPUTS.extend(rules.distill.output)
