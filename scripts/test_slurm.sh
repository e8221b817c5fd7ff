#!/usr/bin/env bash
# The Slurm path of `recrl sweep`, for real: starts a single-node Slurm on this machine
# (Debian's slurm-wlm and munge, installed when missing), submits a tiny sweep (ml-100k, the
# smoke preset, two arms, one seed) with `recrl sweep --slurm`, waits for the three jobs
# (prepare, a job array of two runs, the aggregate that depends on it) and checks what they
# left: the audits of the baselines and both runs, the aggregate CSV and a log per job. Stops the Slurm
# daemons it started. Run by scripts/test.sh after `cargo test`.
#   scripts/test_slurm.sh            (RECRL=path/to/recrl to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
R=$(readlink -f "${RECRL:-target/debug/recrl}")
[ -x "$R" ] || { cargo build -q --bin recrl; R=$(readlink -f target/debug/recrl); }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (apt) ..."
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq slurm-wlm munge >/dev/null
fi

W=$REPO/target/slurm-test
rm -rf "$W" && mkdir -p "$W/state" "$W/spool" "$W/project/experiments" "$W/project/checkpoints" "$W/project/data/raw"
H=$(hostname -s)
cat > "$W/slurm.conf" <<EOF
ClusterName=recrl-test
SlurmctldHost=$H(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$W/slurm.conf

# munge (the authentication Slurm uses), as the munge user
# (Debian's postinst may have started munged as root once, leaving root-owned log, socket and
# pid files that munged refuses as "insecure" when it starts as munge: hand them back first.)
if ! munge -n >/dev/null 2>&1; then   # no munged answering (a stopped one may linger as a zombie)
  as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
  as_root rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
  as_root chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  as_root su -s /bin/sh munge -c munged || {
    echo "munged did not start:"; as_root tail -n 5 /var/log/munge/munged.log; exit 1; }
fi
stop() { as_root pkill -F "$W/slurmd.pid" 2>/dev/null || true; pkill -F "$W/slurmctld.pid" 2>/dev/null || true; }
trap stop EXIT
slurmctld
as_root env SLURM_CONF="$SLURM_CONF" slurmd
for _ in $(seq 30); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %t | grep -q idle || { echo "Slurm did not come up:"; tail -n 20 "$W"/slurm*.log; exit 1; }
echo "single-node Slurm up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"

# a scratch project: the configuration, ml-100k's raw files, the models and lexicons
P=$W/project
cp experiments/recrl_default.yaml "$P/experiments/"
ln -s "$REPO/data/raw/ml-100k" "$P/data/raw/ml-100k"
ln -s "$REPO/data/lexicons" "$P/data/lexicons"
ln -s "$REPO/checkpoints/models" "$P/checkpoints/models"
ln -s "$REPO/.venv-nb" "$P/.venv-nb"
cat > "$W/tiny.yaml" <<EOF
datasets: [ml-100k]
arms: [shielded, no_proj]
seeds: [1]
preset: smoke
audit_users: 4
EOF
export RECRL_ROOT=$P RECRL_DEVICE=cpu
"$R" sweep --file "$W/tiny.yaml" --slurm "$W/jobs"
bash "$W/jobs/submit.sh"
t0=$(date +%s)
while [ -n "$(squeue -h)" ]; do
  [ $(( $(date +%s) - t0 )) -lt 1800 ] || { echo "jobs still queued after 30 min"; squeue; exit 1; }
  sleep 5
done
echo "all jobs left the queue after $(( $(date +%s) - t0 )) s; logs: $(cd "$W/jobs/logs" && ls | tr '\n' ' ')"

ok=1
for tag in base base_no_soft template best_of_n shielded_s1 no_proj_s1; do
  [ -f "$P/logs/ml-100k/$tag/audit.json" ] || { echo "missing: logs/ml-100k/$tag/audit.json"; ok=0; }
done
[ -f "$P/results/aggregate_results.csv" ] || { echo "missing: results/aggregate_results.csv"; ok=0; }
n_logs=$(ls "$W/jobs/logs" | wc -l)
[ "$n_logs" -eq 4 ] || { echo "expected 4 job logs (prepare, 2 array tasks, aggregate), found $n_logs"; ok=0; }
if [ $ok = 1 ]; then
  echo "Slurm sweep: ok (prepare, a 2-task array and the aggregate ran in dependency order)"
else
  for f in "$W"/jobs/logs/*; do echo "== $f"; tail -n 15 "$f"; done
  exit 1
fi
