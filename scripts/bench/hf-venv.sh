#!/usr/bin/env bash
# Creates (once) the scratch venv of the explainer's Python reference: Hugging Face
# transformers loading the same GGUF (fixtures in tests/fixtures/explainer and the peer of
# `cargo bench --bench explainer`), and prints its python. torch 2.11.0 as libtorch.
# Idempotent: a second run only checks the installed versions.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${HF_VENV:-$PWD/target/venv-hf}
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys
sys.exit(not (m.version("transformers") == "4.57.6" and m.version("gguf") == "0.17.1" and m.version("accelerate") == "1.12.0"
              and m.version("torch").startswith("2.11.0")))' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.11.0 \
    transformers==4.57.6 gguf==0.17.1 accelerate==1.12.0 safetensors >&2
fi
echo "$VENV/bin/python"
