#!/usr/bin/env python3
"""Benchmark: notebook compile + run time, the project's kernel settings against evcxr's
defaults, measured in the same run.

    .venv-nb/bin/python scripts/bench_notebooks.py [NOTEBOOK ...] [--out target/bench/notebooks.json]

For each notebook (default: all notebooks/NN_*.ipynb, with --smoke):
* project, cold: a fresh build folder (as on a new checkout);
* project, warm: the same folder again (every later kernel start);
* peer, evcxr defaults: opt-level 2 for dependencies, cell code and recrl-lib, and a new build
  folder per kernel (evcxr deletes its temp dir at exit, so every start is cold).
Writes JSON with the seconds of each run and the ratios.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "scripts", "run_notebooks.py")


def run(notebook, build_dir, out_dir):
    env = dict(os.environ, RECRL_EVCXR_DIR=build_dir)
    t0 = time.time()
    r = subprocess.run([sys.executable, RUNNER, "--smoke", "--no-html", "--out", out_dir, notebook],
                       env=env, capture_output=True, text=True)
    secs = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"bench_notebooks: {notebook} failed:\n{r.stdout}\n{r.stderr[-2000:]}")
    return round(secs, 1)


def peer_copy(notebook, work):
    """The notebook in a folder whose evcxr.toml keeps evcxr's default opt level."""
    os.makedirs(work, exist_ok=True)
    with open(notebook) as f:
        text = f.read().replace('path = \\"../recrl-lib\\"', f'path = \\"{ROOT}/recrl-lib\\"')
    dest = os.path.join(work, os.path.basename(notebook))
    with open(dest, "w") as f:
        f.write(text)
    with open(os.path.join(work, "evcxr.toml"), "w") as f:
        f.write("[evcxr]\npreserve_vars_on_panic = false\n")
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench", "notebooks.json"))
    ap.add_argument("--no-peer", action="store_true",
                    help="skip the evcxr-defaults peer (it recompiles everything at opt-level 2)")
    a = ap.parse_args()
    notebooks = a.notebooks or sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
    tmp = tempfile.mkdtemp(prefix="recrl-bench-")
    results = []
    try:
        for nb in notebooks:
            name = os.path.splitext(os.path.basename(nb))[0]
            # inside the repo, so .cargo/config.toml applies as it does for every kernel
            ours = os.path.join(ROOT, "target", "bench-evcxr")
            shutil.rmtree(ours, ignore_errors=True)
            cold = run(nb, ours, os.path.join(tmp, "out"))
            warm = run(nb, ours, os.path.join(tmp, "out"))
            row = {"notebook": name, "project_cold_s": cold, "project_warm_s": warm}
            if not a.no_peer:
                peer = run(peer_copy(nb, os.path.join(tmp, "peer-nb")), os.path.join(tmp, "peer"),
                           os.path.join(tmp, "out-peer"))
                row.update(evcxr_defaults_s=peer, cold_speedup=round(peer / cold, 2),
                           warm_speedup=round(peer / warm, 2))
            print(json.dumps(row), flush=True)
            results.append(row)
            shutil.rmtree(ours, ignore_errors=True)
            shutil.rmtree(os.path.join(tmp, "peer"), ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "benchmark": "notebook compile + run time (--smoke), project settings vs evcxr defaults",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "results": results,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
