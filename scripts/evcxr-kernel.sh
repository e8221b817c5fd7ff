#!/usr/bin/env bash
# Kernel launcher written into the recrl-rust kernelspec by scripts/setup.sh.
# Gives each running kernel a persistent build folder, target/evcxr/slot-N (the first one no
# other kernel holds), so `:dep recrl-lib` compiles once and later kernels start warm. The
# lock is held by the kernel process for its lifetime. All slots busy: evcxr's own temp dir.
# Build output of slot N is appended to target/evcxr/slot-N.log.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
base=${RECRL_EVCXR_DIR:-$root/target/evcxr}
mkdir -p "$base"
kernel=${EVCXR_JUPYTER:-$(command -v evcxr_jupyter || echo "$HOME/.cargo/bin/evcxr_jupyter")}
for i in 0 1 2 3 4 5 6 7; do
  exec 9>"$base/slot-$i.lock"
  if flock -n 9; then
    export EVCXR_TMPDIR="$base/slot-$i"
    mkdir -p "$EVCXR_TMPDIR"
    # the kernel's own output (cargo's `Compiling ...` lines of :dep builds) goes to a log
    exec "$kernel" --control_file "$1" >>"$EVCXR_TMPDIR.log" 2>&1
  fi
  exec 9>&-
done
exec "$kernel" --control_file "$1"
