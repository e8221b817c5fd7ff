#!/usr/bin/env bash
# The seeded results of issue 18 at one fixed budget that fits a 2-core machine (set before any
# result run, never tuned on outcomes):
#   PPO: 30 steps of 16 rollouts (sim_batch 8: two generation calls of 8), 32 new tokens,
#        1 epoch of 4 micro-batches of 4 with 2 optimiser steps, lr 3e-4; drift every 10 steps;
#        a snapshot every 5 steps (rerun the same command to resume a killed run).
#   audit (protocol 2, issue 28): the held-out panel, all of the split's evaluation users (ml-100k:
#   189), 4 sampled replies each plus the greedy one; the baselines without RL (base,
#   base_no_soft, template, best_of_n) on the same panel. Records of protocol 1 (before issue 28:
#   100 training users) stay in experiments/records/ and are never pooled with protocol 2.
# Everything else is experiments/recrl_default.yaml (ml-100k: SmolLM2-135M, kl_beta 0.05, the
# simulator's α 1, β_q 3, σ_b 0.3 fixed in its sim section; bookcrossing: its section's ranker
# budget of 8 epochs, set before its runs).
#   experiments/seeded_runs.sh DATASET ARM [ARM ...]   e.g. ml-100k shielded_s1 no_proj_s1
# Arms run two at a time, one thread each; then their audits (and base's), then the aggregate
# (`recrl aggregate --records --readme`: experiments/*.csv, .tex, figures/ and the README table).
# Each finished arm's record (run.json, metrics.jsonl, audit.json; text_metrics.json after the
# aggregate) is copied into the committed
# experiments/records/DATASET/ARM/, and records from earlier sessions are copied back into logs/
# first: an arm whose record is complete is not run again, so the results build up across
# sessions and machines (commit experiments/records/ after each call).
# Env: RECRL (binary, default target/release/recrl), JOBS (parallel arms, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${RECRL:-target/release/recrl}
JOBS=${JOBS:-2}
DS=$1; shift
BUDGET=(--max_steps 30 --eval_every 10 --checkpoint_every 5 --micro_batch_size 4
        --set ppo_batch=16 --set sim_batch=8 --set max_new_tokens=32 --set epochs=1
        --set grad_accum=2 --set lr=3e-4)
AUDIT_USERS=0   # 0 = every held-out user
RECORDS=experiments/records/$DS
RECORD_FILES=(run.json metrics.jsonl audit.json text_metrics.json)
# complete: a record with its PPO log and audit. The records of protocol 1 (before issue 28)
# count as complete too, so re-running one of their arms under protocol 2 needs their folder
# moved out of experiments/records/DATASET/ first (their runs drew today's held-out users).
complete() { [ -f "$RECORDS/$1/audit.json" ] && [ -f "$RECORDS/$1/metrics.jsonl" ]; }
keep_record() { # copies logs/DS/ARM's record files into RECORDS/ARM (atomically, file by file)
  mkdir -p "$RECORDS/$1"
  for f in "${RECORD_FILES[@]}"; do
    [ -f "logs/$DS/$1/$f" ] || continue
    cp "logs/$DS/$1/$f" "$RECORDS/$1/.$f.tmp" && mv "$RECORDS/$1/.$f.tmp" "$RECORDS/$1/$f"
  done
}
for dir in "$RECORDS"/*/; do # records of earlier sessions, for the aggregate
  [ -d "$dir" ] || continue
  arm=$(basename "$dir")
  [ -d "logs/$DS/$arm" ] || { mkdir -p "logs/$DS/$arm" && cp "$dir"* "logs/$DS/$arm/"; }
done
todo=()
for arm in "$@"; do
  if complete "$arm"; then echo "$arm: complete in $RECORDS/$arm, skipped"; else todo+=("$arm"); fi
done
"$R" data --dataset "$DS"
[ -f "checkpoints/sasrec_$DS.json" ] || "$R" train-ranker --dataset "$DS"
[ -f "checkpoints/basis_$DS.json" ] || "$R" basis --dataset "$DS"
[ -f "checkpoints/lora_init_$DS/explainer.json" ] || "$R" lora-init --dataset "$DS"
mkdir -p "logs/$DS"
run_arm() {
  OMP_NUM_THREADS=1 "$R" ppo --dataset "$DS" --arm "$1" "${BUDGET[@]}" --resume \
    > "logs/$DS/ppo_$1.log" 2>&1 && echo "ppo $1 done" || echo "ppo $1 FAILED (logs/$DS/ppo_$1.log)"
}
for arm in "${todo[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_arm "$arm" &
done
wait
BASELINES=(base base_no_soft template best_of_n)
for tag in "${BASELINES[@]}" "${todo[@]}"; do
  # a baseline is audited once per machine and kept as a record (its audit.json holds the panel
  # user by user, which is all the arms' audits pair with); an arm once its PPO run finished
  case " ${BASELINES[*]} " in
    *" $tag "*) [ -f "logs/$DS/$tag/audit.json" ] && grep -q '"version": 2' "logs/$DS/$tag/audit.json" && continue ;;
    *) [ -f "logs/$DS/$tag/run.json" ] || continue ;;  # its PPO run did not finish
  esac
  "$R" audit --dataset "$DS" --tag "$tag" --users "$AUDIT_USERS" > "logs/$DS/audit_$tag.log" 2>&1 \
    && { echo "audit $tag done"; keep_record "$tag"; } || echo "audit $tag FAILED (logs/$DS/audit_$tag.log)"
done
# the text metrics of the new audits (scored in logs/; the live tables go to results/) …
"$R" aggregate --no_static
for tag in "${todo[@]}"; do [ -f "logs/$DS/$tag/audit.json" ] && keep_record "$tag"; done
# … then the committed tables, figures and README table, from the records alone
"$R" aggregate --records --readme
