#!/usr/bin/env bash
# Trains catgan_jax on a Cloud TPU VM pod slice: one main.py process per
# worker (host), all of them forming one JAX job over every TPU core.
#
#   WORKDIR=gs://BUCKET/runs/dcgan64 launch/tpu_pod.sh [main.py args...]
#
# Steps (all by default; pick some with STEPS=...):
#   create  create the TPU VM slice, or reuse it if it exists
#   copy    copy this repository to every worker (~/$REMOTE_DIR)
#   setup   run launch/setup_vm.sh tpu on every worker (venv, jax[tpu])
#   run     start main.py on every worker with gcloud ... ssh --worker=all
#
# jax.distributed discovers the slice by itself on TPU VMs
# (--config.distributed.enabled=True, no coordinator needed). The workdir
# must be on GCS: the workers share no disk, and every one of them writes its
# part of each checkpoint there. Re-running the script with STEPS=run resumes
# the run from its newest checkpoint (e.g. after a spot preemption).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TPU_NAME="${TPU_NAME:-catgan-pod}"
ZONE="${ZONE:-us-central2-b}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-32}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
CONFIG="${CONFIG:-configs/dcgan64.py}"
REMOTE_DIR="${REMOTE_DIR:-catgan_jax}"
STEPS="${STEPS:-create,copy,setup,run}"

usage() {
  cat <<EOF
Usage: WORKDIR=gs://BUCKET/PATH $(basename "$0") [main.py args...]

Creates (or reuses) a TPU VM pod slice, copies this repository to every
worker, installs jax[tpu] and the requirements there (launch/setup_vm.sh) and
starts main.py on all workers at once. Extra arguments go to main.py, e.g.
--config.batch_size=512 (the global batch, split over all TPU cores).

Environment (default):
  WORKDIR           run directory on GCS, gs://... (required)
  CONFIG            experiment config ($CONFIG)
  TPU_NAME          TPU VM name ($TPU_NAME)
  ZONE              zone ($ZONE)
  ACCELERATOR_TYPE  slice type, e.g. v4-32, v5litepod-16 ($ACCELERATOR_TYPE)
  RUNTIME_VERSION   TPU VM image ($RUNTIME_VERSION)
  PROJECT           GCP project (gcloud's default)
  SPOT=1            create the slice as a spot VM (preemptible)
  STEPS             comma-separated subset of create,copy,setup,run
                    ($STEPS)
  REMOTE_DIR        code directory in the workers' home ($REMOTE_DIR)
  DETACH=1          start training in the background on every worker (log in
                    ~/$REMOTE_DIR/train.log) instead of streaming its output
  DRY_RUN=1         print the gcloud commands without running them

Example:
  WORKDIR=gs://my-bucket/cats/dcgan64 ACCELERATOR_TYPE=v4-32 \\
    $0 --config.batch_size=256
Delete the slice when done:
  gcloud compute tpus tpu-vm delete $TPU_NAME --zone=$ZONE
EOF
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
if [[ "$STEPS" == *run* && "${WORKDIR:-}" != gs://* ]]; then
  echo "error: WORKDIR must be a gs:// path (the workers share no disk), got" \
       "'${WORKDIR:-}'" >&2
  usage >&2
  exit 2
fi

GCLOUD=(gcloud compute tpus tpu-vm)
LOCATION=(--zone="$ZONE")
if [[ -n "${PROJECT:-}" ]]; then
  LOCATION+=(--project="$PROJECT")
fi

run() {
  echo "+ $(printf '%q ' "$@")"
  if [[ "${DRY_RUN:-0}" != "1" ]]; then
    "$@"
  fi
}

on_all_workers() {
  run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOCATION[@]}" --worker=all \
    --command="$1"
}

has_step() {
  [[ ",$STEPS," == *",$1,"* ]]
}

echo "tpu_pod: $ACCELERATOR_TYPE slice '$TPU_NAME' in $ZONE; steps: $STEPS"

if has_step create; then
  if [[ "${DRY_RUN:-0}" != "1" ]] && "${GCLOUD[@]}" describe "$TPU_NAME" \
      "${LOCATION[@]}" > /dev/null 2>&1; then
    echo "tpu_pod: reusing the existing TPU VM '$TPU_NAME'"
  else
    create=("${GCLOUD[@]}" create "$TPU_NAME" "${LOCATION[@]}"
            --accelerator-type="$ACCELERATOR_TYPE"
            --version="$RUNTIME_VERSION")
    if [[ "${SPOT:-0}" == "1" ]]; then
      create+=(--spot)
    fi
    run "${create[@]}"
  fi
fi

if has_step copy; then
  # Source only: no virtualenv, caches or local runs.
  archive="$(mktemp -d)/catgan_jax.tar.gz"
  run tar -czf "$archive" -C "$ROOT" --exclude=.git --exclude=.venv \
    --exclude=__pycache__ --exclude=runs --exclude='*.egg-info' .
  run "${GCLOUD[@]}" scp "$archive" "$TPU_NAME:catgan_jax.tar.gz" \
    "${LOCATION[@]}" --worker=all
  on_all_workers "mkdir -p ~/$REMOTE_DIR && tar -xzf ~/catgan_jax.tar.gz -C ~/$REMOTE_DIR && rm ~/catgan_jax.tar.gz"
fi

if has_step setup; then
  on_all_workers "cd ~/$REMOTE_DIR && bash launch/setup_vm.sh tpu"
fi

if has_step run; then
  train=(.venv/bin/python main.py "--config=$CONFIG" "--workdir=$WORKDIR"
         --config.distributed.enabled=True "$@")
  train_cmd="$(printf '%q ' "${train[@]}")"
  if [[ "${DETACH:-0}" == "1" ]]; then
    on_all_workers "cd ~/$REMOTE_DIR && nohup $train_cmd > train.log 2>&1 < /dev/null &"
    echo "tpu_pod: started; follow it with:"
    echo "  ${GCLOUD[*]} ssh $TPU_NAME --zone=$ZONE --worker=0 --command='tail -f ~/$REMOTE_DIR/train.log'"
  else
    on_all_workers "cd ~/$REMOTE_DIR && $train_cmd"
  fi
  echo "tpu_pod: TensorBoard: tensorboard --logdir $WORKDIR"
fi
