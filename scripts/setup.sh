#!/usr/bin/env bash
# Installs what the project needs, idempotently; a second run takes a few seconds.
#   scripts/setup.sh [all|libtorch|assets|notebooks] ...   (default: all)
#     libtorch   torch 2.11.0 wheel in .venv, linked at .libtorch (TORCH_FLAVOR=cuda for GPUs)
#     assets     ml-100k, Book-Crossing, SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2 and the audit word lists,
#                sha256-verified
#     notebooks  evcxr_jupyter 0.22.0 (cargo install, ~6-15 min once), the Jupyter venv
#                .venv-nb (JupyterLab, papermill, plotly, kaleido) and the recrl-rust kernel
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EVCXR_VERSION=0.22.0
PY=${PYTHON:-python3}

need() { command -v "$1" >/dev/null 2>&1; }

apt_install() { # apt_install CMD PACKAGE: install PACKAGE when CMD is missing
  need "$1" && return 0
  echo "installing $2 (apt) ..."
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$2" >/dev/null; fi
}

setup_libtorch() { bash scripts/setup-libtorch.sh; }

setup_assets() {
  apt_install npm npm
  "$PY" scripts/fetch_assets.py --group default --group bookcrossing
  "$PY" scripts/build_llama_tokenizer.py
}

setup_notebooks() {
  apt_install flock util-linux
  # 1. the Rust kernel
  local bin
  bin=$(command -v evcxr_jupyter || echo "$HOME/.cargo/bin/evcxr_jupyter")
  if ! { [ -x "$bin" ] && cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; }; then
    echo "installing evcxr_jupyter $EVCXR_VERSION (cargo install, several minutes, once) ..."
    cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION"
    bin="$HOME/.cargo/bin/evcxr_jupyter"
  fi
  # 2. the Jupyter venv (reinstalled only when the pinned requirements change)
  [ -x .venv-nb/bin/python ] || "$PY" -m venv .venv-nb
  local want have
  want=$(sha256sum scripts/requirements-notebooks.txt | cut -d' ' -f1)
  have=$(cat .venv-nb/.requirements.sha256 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "installing the Jupyter environment into .venv-nb ..."
    .venv-nb/bin/python -m pip install --disable-pip-version-check -q -r scripts/requirements-notebooks.txt
    echo "$want" > .venv-nb/.requirements.sha256
  fi
  # 3. the kernelspec, rewritten every time so absolute paths follow the checkout
  local site spec
  site=$(.venv-nb/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  spec=.venv-nb/share/jupyter/kernels/recrl-rust
  mkdir -p "$spec"
  local lib; lib=$(readlink -f .libtorch)
  cat > "$spec/kernel.json.tmp" <<JSON
{
  "argv": ["bash", "$ROOT/scripts/evcxr-kernel.sh", "{connection_file}"],
  "display_name": "Rust (recrl)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "EVCXR_JUPYTER": "$bin",
    "RECRL_ROOT": "$ROOT",
    "LIBTORCH": "$lib",
    "LD_LIBRARY_PATH": "$lib/lib",
    "KALEIDO_DIR": "$site/kaleido/executable",
    "PLOTLYJS": "$site/plotly/package_data/plotly.min.js"
  }
}
JSON
  mv "$spec/kernel.json.tmp" "$spec/kernel.json"
  echo "kernel recrl-rust: evcxr_jupyter $EVCXR_VERSION, Jupyter env .venv-nb"
}

steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(all)
for s in "${steps[@]}"; do
  case "$s" in
    all) setup_libtorch; setup_assets; setup_notebooks ;;
    libtorch) setup_libtorch ;;
    assets) setup_assets ;;
    notebooks) setup_libtorch; setup_notebooks ;;
    *) echo "unknown set-up step '$s' (all, libtorch, assets, notebooks)" >&2; exit 2 ;;
  esac
done
