#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh, idempotent), then runs the
# pipeline's notebooks headless on the embedded default (ml-100k + SmolLM2-135M).
#   scripts/run-notebooks.sh                          all notebooks/NN_*.ipynb, in order
#   scripts/run-notebooks.sh notebooks/00_environment.ipynb -p reps 10
#   scripts/run-notebooks.sh --smoke                  small workloads (what the tests run)
# Executed copies (+ HTML) land in notebooks/executed/; exit 1 if any notebook fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv-nb/bin/python scripts/run_notebooks.py "$@"
