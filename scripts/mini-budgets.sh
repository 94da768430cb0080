#!/usr/bin/env bash
# The mini reproduction's budget choice on validation (issue 29), after
#   snakemake --cores all --configfile config/mini.yaml --workflow-profile config/profiles/local
# The workflow fine-tunes at one budget (config/finetune/mini.yaml: 1152 steps). This runs the
# compared starts (scratch, and epoch 36 of both pre-training runs; seeds 0 1 2) at half and
# twice that budget too, two runs at a time, then summarizes the three budgets into Table 3: the
# findings choose each start's budget on its mean final validation MAE and read that budget's
# test MAE once (docs/verdicts-and-numbers.md). The report is rebuilt from the new tables.
# Usage: scripts/mini-budgets.sh [RESULTS]   (default results-mini). A rerun skips finished runs.
set -euo pipefail
results=${1:-results-mini}
export results

run_one() {  # steps start seed
  local steps=$1 start=$2 seed=$3 checkpoint label out
  case $start in
    scratch) checkpoint=scratch ;;
    epoch_36) checkpoint=$results/pretrain/mini/checkpoints/epoch_36.pt ;;
    epoch_36_pretrain-mini_s1) checkpoint=$results/pretrain/mini_s1/checkpoints/epoch_36.pt ;;
  esac
  label=$start$([ "$seed" = 0 ] || echo "_seed$seed")
  out=$results/finetune/mini_steps$steps/$label
  [ -f "$out/test_metrics.json" ] && return 0
  mkdir -p "$out"
  OMP_NUM_THREADS=1 lamm finetune --config config/finetune/mini.yaml \
    --store "$results/data/hme21.lmdb" --out "$out" --checkpoint "$checkpoint" \
    --train-fraction 1.0 --seed "$seed" --total-steps "$steps" --launcher none --resume \
    > "$out.log" 2>&1 || { echo "failed: $out (see $out.log)" >&2; return 255; }
}
export -f run_one

starts=(scratch epoch_36 epoch_36_pretrain-mini_s1)
for steps in 576 2304; do
  for start in "${starts[@]}"; do
    for seed in 0 1 2; do echo "$steps $start $seed"; done
  done
done | xargs -P 2 -L 1 bash -c 'run_one "$@"' _

runs=()
for dir in "$results/finetune/mini" "$results"/finetune/mini_steps*; do
  for start in "${starts[@]}" epoch_0 epoch_1 epoch_4 epoch_12; do
    for suffix in "" _seed1 _seed2; do
      [ -f "$dir/$start$suffix/test_metrics.json" ] && runs+=("$dir/$start$suffix")
    done
  done
done
lamm summarize finetune "${runs[@]}" --energy-threshold 30.0 --forces-threshold 30.0 \
  --table "$results/tables/table3_finetune.csv" --summary "$results/tables/table3_summary.csv" \
  --figure "$results/figures/fig9_finetune.png" > "$results/logs/finetune_table_budgets.log" 2>&1
lamm report --results "$results" --out "$results/report.html" --config config/mini.yaml \
  --config config/config.yaml --config config/pretrain/mini.yaml \
  --config config/pretrain/mini_s1.yaml --downstream hme21 > "$results/logs/report_budgets.log" 2>&1
echo "Table 3 over three budgets: $results/tables/table3_summary.csv; report: $results/report.html"
