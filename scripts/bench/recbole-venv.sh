#!/usr/bin/env bash
# Creates (once) the scratch venv of the ranker benchmark's peer, RecBole 1.2.1 on torch 2.11.0
# (~3 GB with torch's CUDA wheels, which PyPI ships for Linux), and prints its python.
# Idempotent: a second run only checks the installed versions.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${RECBOLE_VENV:-$PWD/target/venv-recbole}
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys
sys.exit(not (m.version("recbole") == "1.2.1" and m.version("torch").startswith("2.11.0")))' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.11.0 recbole==1.2.1 >&2
fi
echo "$VENV/bin/python"
