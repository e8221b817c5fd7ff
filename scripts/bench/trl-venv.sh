#!/usr/bin/env bash
# Creates (once) the scratch venv of the RL step's peer, TRL's GRPOTrainer (the peer of
# `cargo bench --bench rl_step`, issue 29), converts the project's SmolLM2 GGUF to the f32
# Hugging Face folder both sides start from, and prints the venv's python. Versions as in
# ../shared/bench/trl-grpo/README.md. Idempotent: a second run only checks them.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${TRL_VENV:-$PWD/target/venv-trl}
MODEL=${TRL_MODEL:-$PWD/target/smollm2-135m-f32}
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys
want = {"trl": "1.16.0", "transformers": "5.25.0", "peft": "0.21.2", "accelerate": "1.16.0",
        "datasets": "5.2.0", "gguf": "0.19.0"}
sys.exit(not (all(m.version(k) == v for k, v in want.items()) and m.version("torch").startswith("2.11.0")))' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.11.0 trl==1.16.0 \
    transformers==5.25.0 peft==0.21.2 accelerate==1.16.0 datasets==5.2.0 gguf==0.19.0 pyarrow >&2
fi
if [ ! -f "$MODEL/config.json" ]; then
  "$VENV/bin/python" scripts/bench/trl_convert_gguf.py \
    checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf "$MODEL" >&2
fi
echo "$VENV/bin/python"
