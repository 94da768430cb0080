"""Distillation (DPA-2): a small, fast student potential from a fine-tuned teacher, for long MD.

One concept per module: `explore` (Langevin MD sampling), `select` (committee force deviation,
trust window, cap), `label` (teacher labels into stores), `train` (students trained with the
fine-tuning machinery), `loop` (the resumable rounds), `speed` (MD speed, NVE drift), `final`
(the acceptance checks), `figures`; `config` reads `config/distill/*.yaml`. Entry point:
`lamm distill` (lamm.commands.distill).
"""
