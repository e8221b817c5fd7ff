#!/usr/bin/env bash
# Runs every pipeline step once at fixed seeds and small settings in a scratch project root and
# prints the sha256 of every file the steps wrote: the check that a refactor changed no output.
#   scripts/golden-outputs.sh OUT.sha256 [RECRL_BINARY]    (default target/release/recrl)
# Compare two builds: run it with each binary and `diff` the two listings. Takes 5 to 10 minutes
# on 2 cores (ranker 3 epochs, lora-init, 3 PPO steps of 4 rollouts, audits of 8 users).
# The steps run in one fixed folder (/tmp/recrl-golden-work, emptied first), so absolute paths
# written into files (the adapter's base model) agree between runs. Wall-clock fields differ run
# to run: JSON keys that hold timings, and the CSV's wall_s column, are dropped before hashing;
# every other byte counts. The configuration files copied in are inputs and not listed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "$1")
BIN=$(realpath "${2:-target/release/recrl}")
REPO=$PWD
WORK=/tmp/recrl-golden-work
rm -rf "$WORK"
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

cd "$WORK"
python3 - "$OUT" <<'PY'
import csv, hashlib, io, json, os, sys
TIMINGS = {"seconds", "phases", "train_seconds", "eval_seconds", "positions_per_s", "wall_seconds",
           "wall_seconds_this_session"}
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in TIMINGS}
    return [strip(v) for v in o] if isinstance(o, list) else o
def normalised(path):
    raw = open(path, "rb").read()
    if path.endswith(".json"):
        return json.dumps(strip(json.loads(raw)), sort_keys=False).encode()
    if path.endswith(".jsonl"):
        return b"\n".join(json.dumps(strip(json.loads(l))).encode() for l in raw.splitlines() if l.strip())
    if path.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(raw.decode())))
        drop = [i for i, c in enumerate(rows[0]) if c == "wall_s"] if rows else []
        return "\n".join(",".join(c for i, c in enumerate(r) if i not in drop) for r in rows).encode()
    return raw
skip = ("./data/raw", "./data/lexicons", "./checkpoints/models", "./experiments/recrl_default.yaml",
        "./experiments/policy_thresholds.yaml", "./steps.log")
# TensorBoard event files hold wall times in their names and records: not compared
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(".") for f in fs
               if not f.startswith("events.out.tfevents."))
with open(sys.argv[1], "w") as out:
    for f in files:
        if not f.startswith(skip):
            out.write(f"{hashlib.sha256(normalised(f)).hexdigest()}  {f}\n")
PY
echo "$(wc -l < "$OUT") files listed in $OUT (work folder $WORK)"
