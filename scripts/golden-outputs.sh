#!/usr/bin/env bash
# Runs every pipeline step once at fixed seeds and small settings in a scratch project root and
# prints the sha256 of every file the steps wrote: the check that a refactor changed no output.
#   scripts/golden-outputs.sh OUT.sha256 [RECRL_BINARY]    (default target/release/recrl)
# Compare two builds: run it with each binary and `diff` the two listings. Takes about 5 minutes
# on 2 cores (ranker 3 epochs, lora-init, 3 PPO steps of 4 rollouts, audits of 8 users).
# Volatile fields (wall times, dates, the machine) are not files' content we can fix; files that
# carry them are listed with the sha256 of their content less those fields (see `normalise`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "$1")
BIN=$(realpath "${2:-target/release/recrl}")
REPO=$PWD
WORK=$(mktemp -d /tmp/recrl-golden.XXXXXX)
mkdir -p "$WORK/experiments" "$WORK/data" "$WORK/checkpoints"
cp experiments/recrl_default.yaml experiments/policy_thresholds.yaml "$WORK/experiments/"
ln -s "$REPO/data/raw" "$WORK/data/raw"
ln -s "$REPO/data/lexicons" "$WORK/data/lexicons"
ln -s "$REPO/checkpoints/models" "$WORK/checkpoints/models"
export RECRL_ROOT=$WORK RECRL_DEVICE=cpu
R=("$BIN")
DS=(--dataset ml-100k)
PPO=(--max_steps 3 --eval_every 1 --checkpoint_every 2 --micro_batch_size 2 --grad_accum 2
     --set ppo_batch=4 --set max_new_tokens=8 --set lr=3e-4 --set epochs=2)
(
  cd "$WORK"
  "${R[@]}" data "${DS[@]}"
  "${R[@]}" train-ranker "${DS[@]}" --epochs 3
  "${R[@]}" basis "${DS[@]}"
  "${R[@]}" lora-init "${DS[@]}" --users 4
  "${R[@]}" ppo "${DS[@]}" --tag shielded "${PPO[@]}"
  "${R[@]}" ppo "${DS[@]}" --tag no_proj --no_projection "${PPO[@]}"
  for tag in base shielded no_proj; do
    "${R[@]}" audit "${DS[@]}" --tag "$tag" --users 8
  done
  "${R[@]}" aggregate --no_static
) > "$WORK/steps.log" 2>&1 || { tail -30 "$WORK/steps.log"; echo "a step failed: $WORK/steps.log" >&2; exit 1; }

# Wall-clock fields differ run to run; every other byte must match.
normalise() {
  case "$1" in
    *.json|*.jsonl) sed -E 's/"(secs|seconds|wall_s|wall_time_s|elapsed_s|elapsed|created|date|started|finished|timestamp|time_s|step_s|sec_per_step|host|hostname|duration_s)": ?[^,}]*/"\1":_/g' "$1" ;;
    *.csv) sed -E 's/[0-9]+\.[0-9]+s\b/_s/g' "$1" ;;
    *) cat "$1" ;;
  esac
}
cd "$WORK"
find . -path ./data/raw -prune -o -path ./data/lexicons -prune -o -path ./checkpoints/models -prune \
  -o -type f ! -name steps.log -print | LC_ALL=C sort | while read -r f; do
  printf '%s  %s\n' "$(normalise "$f" | sha256sum | cut -d' ' -f1)" "$f"
done > "$OUT"
echo "$(wc -l < "$OUT") files listed in $OUT (work folder $WORK)"
