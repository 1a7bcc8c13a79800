#!/usr/bin/env bash
# Runs N cooperating JAX processes on this machine, on CPU, the way a pod or a
# cluster runs one process per host: same code path (jax.distributed, one
# global mesh, per-process data shards, cooperative orbax checkpoints), with
# gloo collectives over localhost instead of ICI/NCCL.
#
#   launch/local_multiprocess.sh N [main.py args...]
#
# Each process i gets the main.py arguments plus
#   --config.distributed.enabled=True
#   --config.distributed.coordinator_address=127.0.0.1:PORT
#   --config.distributed.num_processes=N --config.distributed.process_id=i
# Its output is prefixed with "[i] ". The script waits for all processes and
# exits with the first non-zero exit code; when one process fails, the others
# are stopped (they would otherwise wait for it in a collective).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<EOF
Usage: $(basename "$0") N [main.py args...]

Starts N processes of main.py on localhost (CPU, gloo collectives) that form
one multi-process JAX job, waits for all of them, and exits non-zero if any
of them fails.

Example (2 processes x 2 CPU devices = a 4-device global mesh):
  DEVICES_PER_PROCESS=2 $0 2 --config=configs/test.py --workdir=/tmp/mp

Environment:
  PYTHON               interpreter (default: python)
  SCRIPT               program to run (default: $ROOT/main.py); it must accept
                       the --config.distributed.* flags and call
                       catgan_jax.parallel.initialize
  DEVICES_PER_PROCESS  CPU devices per process (default: 1); sets
                       JAX_NUM_CPU_DEVICES
  PORT                 coordinator port on 127.0.0.1 (default: a free port)
  KILL_AFTER           seconds between stopping the others with SIGTERM
                       after a failure and SIGKILL (default: 15)
  JAX_PLATFORMS        default: cpu
  DRY_RUN=1            print the commands without running them
EOF
}

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  usage
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
NUM_PROCESSES="$1"
shift
if ! [[ "$NUM_PROCESSES" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: N must be a positive integer, got '$NUM_PROCESSES'" >&2
  usage >&2
  exit 2
fi

PYTHON="${PYTHON:-python}"
SCRIPT="${SCRIPT:-$ROOT/main.py}"
DEVICES_PER_PROCESS="${DEVICES_PER_PROCESS:-1}"
if ! [[ "$DEVICES_PER_PROCESS" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: DEVICES_PER_PROCESS must be a positive integer," \
       "got '$DEVICES_PER_PROCESS'" >&2
  exit 2
fi
if [[ -z "${PORT:-}" ]]; then
  # Ask the OS for a free port (a small race with other programs is possible;
  # set PORT to choose one).
  PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export JAX_NUM_CPU_DEVICES="$DEVICES_PER_PROCESS"
export JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo

echo "local_multiprocess: $NUM_PROCESSES processes x $DEVICES_PER_PROCESS" \
     "CPU device(s), coordinator 127.0.0.1:$PORT"
commands=()
for ((i = 0; i < NUM_PROCESSES; i++)); do
  cmd=("$PYTHON" "$SCRIPT" "$@"
       --config.distributed.enabled=True
       "--config.distributed.coordinator_address=127.0.0.1:$PORT"
       "--config.distributed.num_processes=$NUM_PROCESSES"
       "--config.distributed.process_id=$i")
  commands+=("$(printf '%q ' "${cmd[@]}")")
  echo "  [$i] JAX_PLATFORMS=$JAX_PLATFORMS JAX_NUM_CPU_DEVICES=$DEVICES_PER_PROCESS ${commands[$i]}"
done
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  exit 0
fi

pids=()
kill_deadline=0
# SIGTERM first (the trainer checkpoints and exits at the next step); a
# process blocked in a collective with a dead peer only goes with SIGKILL.
stop_all() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  kill_deadline=$((SECONDS + ${KILL_AFTER:-15}))
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

for ((i = 0; i < NUM_PROCESSES; i++)); do
  # The process substitution prefixes each line; $! is the Python process.
  eval "${commands[$i]}" > >(sed -u "s/^/[$i] /") 2>&1 &
  pids+=("$!")
done

# Poll rather than `wait` on one pid, so that the first failure, in any
# process, stops the others instead of leaving them blocked in a collective.
status=0
remaining=$NUM_PROCESSES
declare -A done_pids=()
while ((remaining > 0)); do
  for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    if [[ -n "${done_pids[$pid]:-}" ]]; then
      continue
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0
      wait "$pid" || rc=$?
      done_pids[$pid]=1
      remaining=$((remaining - 1))
      echo "local_multiprocess: process $i exited with code $rc"
      if ((rc != 0 && status == 0)); then
        status=$rc
        if ((remaining > 0)); then
          echo "local_multiprocess: stopping the other processes" >&2
          stop_all
        fi
      fi
    fi
  done
  if ((remaining > 0)); then
    if ((kill_deadline > 0 && SECONDS >= kill_deadline)); then
      echo "local_multiprocess: killing the processes still running" >&2
      for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
      done
      kill_deadline=0
    fi
    sleep 0.5
  fi
done
# Let the output prefixers drain.
wait
exit "$status"
