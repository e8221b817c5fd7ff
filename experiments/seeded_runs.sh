#!/usr/bin/env bash
# The result runs of issue 31 under protocol 3 (src/record.rs), at one fixed budget that fits a
# 2-core machine (set before any result run, never tuned on outcomes):
#   PPO: 30 steps of 16 rollouts (sim_batch 8: two generation calls of 8), replies stopped at
#        their first sentence end within 56 new tokens and 220 characters (the configuration's
#        max_sentences, max_new_tokens, explanation_max_len), 1 epoch of 4 micro-batches of 4
#        with 2 optimiser steps, lr 3e-4; drift every 10 steps; a snapshot every 5 steps.
#   audit: the held-out panel, all of the split's evaluation users (ml-100k: 189), 4 sampled
#   replies each plus the greedy one; the baselines without RL (base, base_no_soft, template,
#   best_of_n) on the same panel, audited first (the arms' audits pair with base's).
# Everything else is experiments/recrl_default.yaml (ml-100k: SmolLM2-135M, kl_beta 0.05, the
# simulator's α 1, β_q 3, σ_b 0.3 and the reward's form gates fixed in its sim and reward
# sections; bookcrossing: its section's ranker budget).
#   experiments/seeded_runs.sh DATASET ARM [ARM ...]   e.g. ml-100k shielded_s1 frozen_s1
# Each arm is one job (its PPO run, then its audit, then its record copied), JOBS at a time with
# one thread each; then the aggregate (`recrl aggregate --records --readme`). Each finished
# record (run.json, metrics.jsonl, audit.json, explanation samples; text_metrics.json after the
# aggregate) is copied into the committed experiments/records/DATASET/TAG/ as soon as it is
# complete; commit that folder as records land. A tag whose record is complete under protocol 3
# is skipped, so rerunning the same command after a stop resumes: a PPO run from its last
# snapshot, an audit from its cached explanations. The ranker is kept in experiments/inputs/DS/
# so that every session's runs use the same one (the records' provenance has its sha256).
# Records of protocol 1 (before issue 28) are in
# experiments/superseded/records/ and are never pooled with these.
# Env: RECRL (binary, default target/release/recrl; give a copy that does not change under a
# rebuild), JOBS (parallel arms, default 2), BASELINES (default: base base_no_soft template
# best_of_n; empty to skip them).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${RECRL:-target/release/recrl}
JOBS=${JOBS:-2}
DS=$1; shift
BUDGET=(--max_steps 30 --eval_every 10 --checkpoint_every 5 --micro_batch_size 4
        --set ppo_batch=16 --set sim_batch=8 --set epochs=1 --set grad_accum=2 --set lr=3e-4)
AUDIT_USERS=0   # 0 = every held-out user
read -r -a BASELINE_TAGS <<< "${BASELINES-base base_no_soft template best_of_n}"
PROTOCOL=3
RECORDS=experiments/records/$DS
RECORD_FILES=(run.json metrics.jsonl audit.json text_metrics.json samples.jsonl members.json)
# complete: the record holds an audit of this protocol (and a PPO log, for an arm)
complete() {
  python3 - "$RECORDS/$1" "$PROTOCOL" "$2" <<'PY'
import json, os, sys
d, want, arm = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "arm"
try:
    a = json.load(open(os.path.join(d, "audit.json")))
except OSError:
    sys.exit(1)
ok = (a.get("protocol") or {}).get("version") == want
sys.exit(0 if ok and (not arm or os.path.isfile(os.path.join(d, "metrics.jsonl"))) else 1)
PY
}
keep_record() { # copies logs/DS/TAG's record files into RECORDS/TAG (atomically, file by file)
  mkdir -p "$RECORDS/$1"
  for f in "${RECORD_FILES[@]}"; do
    [ -f "logs/$DS/$1/$f" ] || continue
    cp "logs/$DS/$1/$f" "$RECORDS/$1/.$f.tmp" && mv "$RECORDS/$1/.$f.tmp" "$RECORDS/$1/$f"
  done
}
audit() { # audit TAG: the held-out panel's audit, then the record kept
  "$R" audit --dataset "$DS" --tag "$1" --users "$AUDIT_USERS" > "logs/$DS/audit_$1.log" 2>&1 \
    && { echo "$(date +%T) audit $1 done"; keep_record "$1"; } \
    || { echo "$(date +%T) audit $1 FAILED (logs/$DS/audit_$1.log)"; return 1; }
}
arm_job() { # arm_job TAG: PPO (resumed from its snapshot when there is one), then its audit
  echo "$(date +%T) ppo $1 started"
  OMP_NUM_THREADS=1 "$R" ppo --dataset "$DS" --arm "$1" "${BUDGET[@]}" --resume \
    > "logs/$DS/ppo_$1.log" 2>&1 \
    || { echo "$(date +%T) ppo $1 FAILED (logs/$DS/ppo_$1.log)"; return 1; }
  echo "$(date +%T) ppo $1 done"
  OMP_NUM_THREADS=1 audit "$1"
}
for dir in "$RECORDS"/*/; do # records of earlier sessions, for the aggregate
  [ -d "$dir" ] || continue
  tag=$(basename "$dir")
  [ -d "logs/$DS/$tag" ] || { mkdir -p "logs/$DS/$tag" && cp "$dir"* "logs/$DS/$tag/"; }
done
"$R" data --dataset "$DS"
# the ranker every result run of DS uses: the one committed in experiments/inputs/DS/ (trained
# once by the first session that ran this script; CPUs of other machines may round differently),
# else trained here and committed from here on (commit experiments/inputs/ with the records)
INPUTS=experiments/inputs/$DS
if [ -f "$INPUTS/sasrec_$DS.json" ]; then
  for f in "$INPUTS"/sasrec_"$DS".*; do cmp -s "$f" "checkpoints/$(basename "$f")" || cp "$f" checkpoints/; done
fi
[ -f "checkpoints/sasrec_$DS.json" ] || "$R" train-ranker --dataset "$DS"
[ -f "$INPUTS/sasrec_$DS.json" ] || { mkdir -p "$INPUTS" && cp checkpoints/sasrec_"$DS".* "$INPUTS"/; }
[ -f "checkpoints/basis_$DS.json" ] || "$R" basis --dataset "$DS"
[ -f "checkpoints/lora_init_$DS/explainer.json" ] || "$R" lora-init --dataset "$DS"
mkdir -p "logs/$DS"
for tag in "${BASELINE_TAGS[@]}"; do
  if complete "$tag" baseline; then echo "$tag: complete in $RECORDS/$tag, skipped"
  else audit "$tag" || true; fi
done
for arm in "$@"; do
  if complete "$arm" arm; then echo "$arm: complete in $RECORDS/$arm, skipped"; continue; fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  arm_job "$arm" &
done
wait
# the text metrics of the new audits (scored in logs/; the live tables go to results/) …
"$R" aggregate --no_static
for dir in "$RECORDS"/*/; do
  tag=$(basename "$dir"); [ -f "logs/$DS/$tag/text_metrics.json" ] && keep_record "$tag"
done
# … then the committed tables, figures and README table, from the records alone
"$R" aggregate --records --readme
