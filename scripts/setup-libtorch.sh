#!/usr/bin/env bash
# Installs libtorch 2.11.0 (from PyPI's torch wheel) into .venv and links .libtorch to it.
# Idempotent: a second run only checks the installed version (well under a second).
#   TORCH_FLAVOR=cpu  (default) torch without deps + the two CUDA runtime libraries that
#                     libtorch_cpu.so needs to load (~544 MB). Rust/tch works fully on CPU;
#                     `import torch` in Python does not.
#   TORCH_FLAVOR=cuda the full `pip install torch` with the nvidia-* wheels (~2.7 GB), for GPUs.
#                     The next cargo build links libtorch_cuda automatically (build.rs).
# Other knobs: TORCH_VENV=/path (venv elsewhere), PYTHON=python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0   # must move together with tch = "=0.24.0" in recrl-lib/Cargo.toml
VENV=${TORCH_VENV:-$PWD/.venv}
FLAVOR=${TORCH_FLAVOR:-cpu}
PY=${PYTHON:-python3}
case "$FLAVOR" in cpu|cuda) ;; *) echo "TORCH_FLAVOR must be cpu or cuda, got '$FLAVOR'" >&2; exit 2;; esac
if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
have=$("$VENV/bin/python" -c 'import importlib.metadata as m
try: print(m.version("torch"))
except Exception: print("none")')
have_cuda() { ls "$VENV"/lib/python3*/site-packages/nvidia/cu13/lib/libcublas.so.* >/dev/null 2>&1; }
if [ "${have%%+*}" != "$TORCH_VERSION" ] || { [ "$FLAVOR" = cuda ] && ! have_cuda; }; then
  echo "installing torch $TORCH_VERSION ($FLAVOR flavour) into $VENV ..."
  if [ "$FLAVOR" = cuda ]; then
    $PIP install "torch==$TORCH_VERSION"
  else
    # pins from torch 2.11.0's metadata: cuda-toolkit[cudart,cupti]==13.0.2
    $PIP install --no-deps "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  fi
fi
TORCH_DIR=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch
test -f "$TORCH_DIR/lib/libtorch_cpu.so" || { echo "libtorch_cpu.so missing under $TORCH_DIR" >&2; exit 1; }
ln -sfn "$TORCH_DIR" .libtorch
echo "libtorch $TORCH_VERSION ($(have_cuda && echo cuda || echo cpu) flavour) at $TORCH_DIR"
