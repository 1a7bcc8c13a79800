#!/usr/bin/env bash
# Installs catgan_jax on a fresh machine: a virtualenv with requirements.txt
# (the CPU build of jax) plus the accelerator build of the same jax version.
#
#   launch/setup_vm.sh [auto|cpu|cuda12|cuda13|tpu]
#
# Run it from anywhere; it installs into $VENV (default: <repo>/.venv).
# tpu_pod.sh runs it on every TPU worker; on a GPU cluster run it once on a
# shared filesystem (or on every node) before sbatch launch/slurm.sbatch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JAX_VERSION="${JAX_VERSION:-0.10.2}"

usage() {
  cat <<EOF
Usage: $(basename "$0") [auto|cpu|cuda12|cuda13|tpu]

Creates a virtualenv, installs $ROOT/requirements.txt and then the
accelerator build of jax==$JAX_VERSION:
  cpu     nothing more (requirements.txt already has the CPU build)
  cuda12  jax[cuda12]==$JAX_VERSION (CUDA 12 and cuDNN come as pip wheels;
          only the NVIDIA driver must be installed)
  cuda13  jax[cuda13]==$JAX_VERSION (the same for CUDA 13; needs a newer
          driver)
  tpu     jax[tpu]==$JAX_VERSION (libtpu from PyPI; on a Cloud TPU VM)
  auto    (default) tpu if /dev/accel* or /dev/vfio exist, cuda12 if
          nvidia-smi works, else cpu

Environment:
  VENV         virtualenv to create or reuse (default: $ROOT/.venv)
  PYTHON       interpreter that creates it (default: python3)
  JAX_VERSION  default: $JAX_VERSION (must match requirements.txt)
  DRY_RUN=1    print the commands without running them
EOF
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
TARGET="${1:-auto}"
if [[ "$TARGET" == "auto" ]]; then
  if compgen -G '/dev/accel*' > /dev/null || [[ -d /dev/vfio ]]; then
    TARGET=tpu
  elif command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    TARGET=cuda12
  else
    TARGET=cpu
  fi
fi
case "$TARGET" in
  cpu) ACCEL_PACKAGE="" ;;
  cuda12|cuda13|tpu) ACCEL_PACKAGE="jax[$TARGET]==$JAX_VERSION" ;;
  *)
    echo "error: unknown target '$TARGET'" >&2
    usage >&2
    exit 2
    ;;
esac

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$ROOT/.venv}"
PIP="$VENV/bin/python -m pip"

run() {
  echo "+ $*"
  if [[ "${DRY_RUN:-0}" != "1" ]]; then
    "$@"
  fi
}

echo "setup_vm: installing catgan_jax for '$TARGET' into $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
  run "$PYTHON" -m venv "$VENV"
fi
run $PIP install -q --upgrade pip
run $PIP install -q -r "$ROOT/requirements.txt"
if [[ -n "$ACCEL_PACKAGE" ]]; then
  # Same jax and jaxlib as requirements.txt, plus the accelerator plugin.
  run $PIP install -q "$ACCEL_PACKAGE"
fi
if [[ "$TARGET" == "tpu" ]]; then
  # On a multi-host slice the TPU runtime starts only when every worker starts
  # it, so list no devices here (main.py logs them at start).
  run "$VENV/bin/python" -c 'import jax, jaxlib; print("setup_vm: jax", jax.__version__, "jaxlib", jaxlib.__version__)'
else
  run "$VENV/bin/python" -c 'import jax; print("setup_vm: jax", jax.__version__, "sees", jax.devices())'
fi
