#!/usr/bin/env bash
# The CPU runs behind the README's step 5-7 numbers: ml-100k + SmolLM2-135M, steps 1-4 with
# the defaults, then PPO arms at settings cut down to fit a 2-core machine, their audits and
# the aggregate table and figures. Each arm resumes from its last snapshot if killed (rerun).
#   experiments/cpu_runs_ml100k.sh [ARM ...]     (default: shielded no_proj)
# ARM: a name of the arm table (recrl_lib::ppo::arms::ARMS, passed as `recrl ppo --arm ARM`):
# shielded, no_proj, frozen, kl0, lora4, tau<τ>; a suffix _g<G> adds a group baseline
# (group_size G), e.g. shielded_g4; a suffix _e<E> runs E PPO epochs of 2 optimiser steps
# each (epochs E, grad_accum 1) instead of 1 epoch of one step, e.g. shielded_e4.
# These runs predate the GRPO default (issue 18) and used the value head: ALGO (default
# "--algorithm ppo --group_size 1") keeps them so; ALGO="" runs the current default.
# Env: RECRL (the binary, default target/release/recrl), STEPS (default 200), AUDIT_USERS (100).
# A larger STEPS extends finished arms from their last snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${RECRL:-target/release/recrl}
STEPS=${STEPS:-200}
AUDIT_USERS=${AUDIT_USERS:-100}
ARMS=("$@"); [ ${#ARMS[@]} -eq 0 ] && ARMS=(shielded no_proj)
# 8 rollouts per step, one PPO epoch of one optimiser step (an arm's _e<E> changes both),
# 32 new tokens, lr 3e-4: about 20 s a step on 2 cores.
ALGO=${ALGO---algorithm ppo --group_size 1}
PPO="$ALGO --max_steps $STEPS --eval_every 10 --checkpoint_every 10 --micro_batch_size 4
     --set ppo_batch=8 --set max_new_tokens=32 --set lr=3e-4 --set epochs=1 --set grad_accum=2"
"$R" data --dataset ml-100k
[ -f checkpoints/sasrec_ml-100k.json ] || "$R" train-ranker --dataset ml-100k
[ -f checkpoints/basis_ml-100k.json ] || "$R" basis --dataset ml-100k
[ -f checkpoints/lora_init_ml-100k/explainer.json ] || "$R" lora-init --dataset ml-100k
for arm in "${ARMS[@]}"; do
  # shellcheck disable=SC2086
  "$R" ppo --dataset ml-100k --arm "$arm" $PPO --resume
done
for tag in base "${ARMS[@]}"; do
  "$R" audit --dataset ml-100k --tag "$tag" --users "$AUDIT_USERS"
done
"$R" aggregate
