#!/usr/bin/env bash
# The GPU check of issue 19, repeatable on any machine with a CUDA libtorch and a Python with
# torch + transformers (the `device` machines have both):
#   1. a random-weight model of TinyLlama-1.1B-Chat's exact shape (transformers, bf16), with the
#      Llama-2 tokenizer (checkpoints/models/llama2-tokenizer);
#   2. recrl's f32 logits on 4 chat prompts against transformers' (max abs diff, argmax);
#   3. greedy decode, bf16, 64 new tokens at batch 1 and 8: recrl (`recrl probe`) against
#      transformers `generate` (KV cache), and against the bandwidth limit when
#      GPU_BANDWIDTH_TBS is given (H100 SXM 3.35, H200 4.8);
#   4. PPO steps (ml-100k data, the model above) at the ml-100k settings (16 rollouts, 4 epochs,
#      micro 4, accum 2), the same with --int8, and the seed's books settings (256 rollouts,
#      8 epochs, micro 4, accum 2, sim_batch 32) with one micro-batch a pass and with
#      --exec_batch 8 (the same update): seconds a step (steps after the first), GPU utilisation
#      (median of nvidia-smi samples over the run) and peak memory;
#   and prints the table of issue 19 (also OUT/table.md, with every measurement as JSON in OUT).
#
#   scripts/gpu_check.sh [--tiny] [--out DIR]
#     --tiny   the CPU dry run: a 2-layer model, the CPU, PPO at small batches (checks the plumbing)
#     --out    where the JSON files and table.md go (default target/gpu-check); the model and
#              the scratch project live in target/gpu-check-work[-tiny] (WORK to move it), apart
#              from OUT, so that a GPU check's few small results come back from a device machine
# On a lent `device` machine (the device tool's README): build here, then
#   mkdir -p .gpu && strip -o .gpu/recrl target/release/recrl     (.gpu/ in .git/info/exclude)
#   carry: .gpu data/raw/ml-100k data/lexicons checkpoints/models/llama2-tokenizer
#          checkpoints/models/all-MiniLM-L6-v2/tokenizer.json  (its weights are made up there)
#   there: ln -sfn "$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')" /work/main/.libtorch
#          RECRL=.gpu/recrl GPU_BANDWIDTH_TBS=4.8 scripts/gpu_check.sh --out "$OUT/gpu-check"
#   (the books settings take minutes a step before exec_batch: within one 10-minute command, run
#   SETTINGS="ml ml_int8" first and SETTINGS="books books_exec8" in a second call; the model,
#   ranker and basis are reused from the work folder)
#   Env: PYTHON (default python3), RECRL (default target/release/recrl), STEPS (PPO steps a
#   setting, default 3, at least 2: the first is not timed; the books settings run 2), SETTINGS (default "ml ml_int8 books books_exec8"),
#   GPU_BANDWIDTH_TBS.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
R=$(readlink -f "${RECRL:-target/release/recrl}")
STEPS=${STEPS:-3}
SETTINGS=${SETTINGS:-ml ml_int8 books books_exec8}
TINY=0
OUT=$REPO/target/gpu-check
while [ $# -gt 0 ]; do
  case $1 in
    --tiny) TINY=1 ;;
    --out) OUT=$(readlink -f "$2"); shift ;;
    *) echo "unknown argument $1 (see the header of $0)"; exit 2 ;;
  esac
  shift
done
[ -x "$R" ] || { echo "no recrl binary at $R: cargo build --release, or set RECRL"; exit 2; }
"$PY" -c 'import torch, transformers, safetensors' || { echo "$PY lacks torch/transformers/safetensors"; exit 2; }
[ -f checkpoints/models/llama2-tokenizer/tokenizer.json ] || "$PY" scripts/build_llama_tokenizer.py
if [ $TINY = 1 ]; then
  DEVICE=cpu; BF16=(); MODEL_FLAG=--tiny; W=${WORK:-$REPO/target/gpu-check-work-tiny}
else
  DEVICE=cuda; BF16=(--bf16); MODEL_FLAG=; W=${WORK:-$REPO/target/gpu-check-work}
  "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || { echo "no CUDA GPU visible to $PY (use --tiny for the CPU dry run)"; exit 2; }
fi
mkdir -p "$OUT" "$W"
rm -f "$OUT"/ppo_*.json
M=$W/model
say() { echo "== $(date +%T) $*"; }

# 1. the model (and, when the real one is absent, a random MiniLM for the reward's relevance)
if [ ! -f "$M/config.json" ]; then
  say "random-weight model ($([ $TINY = 1 ] && echo tiny || echo TinyLlama-1.1B shape)) → $M"
  rm -rf "$M"
  "$PY" scripts/gpu_check.py model "$M" $MODEL_FLAG > "$W/model.json"
fi
cp "$W/model.json" "$OUT/model.json"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n1 |
    "$PY" -c 'import json,sys; n,m=sys.stdin.read().strip().split(", "); print(json.dumps({"name":n,"memory":m}))' > "$OUT/device.json"
fi
"$PY" scripts/gpu_check.py prompts "$M" "$OUT/prompts.json"

# 2. logits against transformers (f32)
say "logits, f32, recrl vs transformers"
"$R" probe --model "$M" --prompts "$OUT/prompts.json" --device $DEVICE --logits "$W/logits.safetensors" \
  --batches 1 --new_tokens 1 --repeats 1 --json "$W/probe_f32.json"
"$PY" scripts/gpu_check.py logits "$M" "$OUT/prompts.json" "$W/logits.safetensors" $DEVICE > "$OUT/logits.json"
cat "$OUT/logits.json"

# 3. decode speed
say "greedy decode, 64 new tokens, batch 1 and 8"
"$R" probe --model "$M" --prompts "$OUT/prompts.json" --device $DEVICE ${BF16[@]+"${BF16[@]}"} \
  --batches 1,8 --new_tokens 64 --repeats 3 --json "$OUT/decode_recrl.json"
"$PY" scripts/gpu_check.py generate "$M" "$OUT/prompts.json" $DEVICE 64 1,8 ${BF16[@]+"${BF16[@]}"} > "$OUT/decode_hf.json"

# 4. PPO steps in a scratch project
P=$W/project
mkdir -p "$P/experiments" "$P/checkpoints/models" "$P/data/raw"
cp experiments/recrl_default.yaml "$P/experiments/"
ln -sfn "$REPO/data/raw/ml-100k" "$P/data/raw/ml-100k"
ln -sfn "$REPO/data/lexicons" "$P/data/lexicons"
if [ -f checkpoints/models/all-MiniLM-L6-v2/model.safetensors ]; then
  ln -sfn "$REPO/checkpoints/models/all-MiniLM-L6-v2" "$P/checkpoints/models/all-MiniLM-L6-v2"
elif [ ! -f "$P/checkpoints/models/all-MiniLM-L6-v2/model.safetensors" ]; then
  say "no all-MiniLM-L6-v2 here: a random-weight one for the reward (timing only)"
  "$PY" scripts/gpu_check.py minilm "$P/checkpoints/models/all-MiniLM-L6-v2"
fi
export RECRL_ROOT=$P RECRL_DEVICE=$DEVICE
RANKER=(); [ $TINY = 1 ] && RANKER=(--set ranker.epochs=2)
say "ml-100k: data, ranker, basis, LoRA init with the model"
"$R" data --dataset ml-100k > "$W/prepare.log" 2>&1
[ -f "$P/checkpoints/sasrec_ml-100k.json" ] || "$R" train-ranker --dataset ml-100k ${RANKER[@]+"${RANKER[@]}"} >> "$W/prepare.log" 2>&1
[ -f "$P/checkpoints/basis_ml-100k.json" ] || "$R" basis --dataset ml-100k >> "$W/prepare.log" 2>&1
"$R" lora-init --dataset ml-100k --model "$M" --users 0 >> "$W/prepare.log" 2>&1

ML=(--set ppo_batch=16 --set epochs=4 --micro_batch_size 4 --grad_accum 2 --set sim_batch=16)
BOOKS=(--set ppo_batch=256 --set epochs=8 --micro_batch_size 4 --grad_accum 2 --set sim_batch=32)
[ $TINY = 1 ] && BOOKS=(--set ppo_batch=32 --set epochs=2 --micro_batch_size 4 --grad_accum 2 --set sim_batch=16)
ppo_setting() { # NAME STEPS FLAGS...
  local name=$1 steps=$2; shift 2
  say "PPO $name: $steps steps"
  local smi=$W/smi_$name.csv
  : > "$smi"
  local pid=
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 > "$smi" &
    pid=$!
  fi
  local ok=1
  "$R" ppo --dataset ml-100k --tag "gpu_$name" --overwrite --max_steps "$steps" --eval_every 1000 \
    --set explainer_model="$M" "$@" > "$W/ppo_$name.log" 2>&1 || ok=0
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  if [ $ok = 0 ]; then # recorded, and the other settings still run
    echo "PPO $name failed: $W/ppo_$name.log"; tail -n 20 "$W/ppo_$name.log"
    echo "{\"name\": \"$name\", \"failed\": \"$W/ppo_$name.log\"}" > "$OUT/ppo_$name.json"
    return 0
  fi
  "$PY" - "$P/logs/ml-100k/gpu_$name/metrics.jsonl" "$smi" "$name" > "$OUT/ppo_$name.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in rows if r.get("step", 0) >= 1]
timed = steps[1:] or steps
def number(x):  # nvidia-smi prints [N/A] for what it cannot read (e.g. utilisation under MIG)
    try:
        return float(x)
    except ValueError:
        return None
smi = [[number(v) for v in l.split(",")] for l in open(sys.argv[2]) if l.count(",") == 1]
util = [u for u, _ in smi if u is not None]
mem = [m for _, m in smi if m is not None]
print(json.dumps({"name": sys.argv[3], "steps": len(timed), "first_step_timed": len(steps) < 2,
                  "seconds_per_step": statistics.mean(r["seconds"] for r in timed),
                  "phases": {k: statistics.mean(r["phases"][k] for r in timed) for k in timed[0]["phases"]},
                  "util": f"{statistics.median(util):.0f} %" if util else "n/a (no nvidia-smi)",
                  "peak_mem": f"{max(mem) / 1024:.1f} GiB" if mem else "n/a"}))
EOF
  cat "$OUT/ppo_$name.json"
}
for s in $SETTINGS; do
  case $s in
    ml) ppo_setting ml "$STEPS" "${ML[@]}" ;;
    ml_int8) ppo_setting ml_int8 "$STEPS" "${ML[@]}" --int8 ;;
    books) ppo_setting books 2 "${BOOKS[@]}" ;;
    books_exec8) ppo_setting books_exec8 2 "${BOOKS[@]}" --exec_batch 8 ;;
    books_int8) ppo_setting books_int8 2 "${BOOKS[@]}" --int8 ;;
    *) echo "unknown setting $s"; exit 2 ;;
  esac
done

"$PY" scripts/gpu_check.py table "$OUT" | tee "$OUT/table.md"
