#!/usr/bin/env bash
# Opens the notebooks in JupyterLab with the Rust kernel "Rust (recrl)".
# Extra arguments go to `jupyter lab`, e.g. scripts/lab.sh --no-browser --port 8890
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
extra=(); [ "$(id -u)" = 0 ] && extra=(--allow-root)   # root: containers, CI machines
exec .venv-nb/bin/jupyter lab --notebook-dir=notebooks "${extra[@]}" "$@"
