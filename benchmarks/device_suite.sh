#!/usr/bin/env bash
# One GPU, under 8 minutes: install, time the steps against PyTorch, train.
#
#   benchmarks/device_suite.sh --out DIR --data_dir /path/to/cat_faces_64 \
#       --features_path /path/to/mobilenet_v2.tflite,/path/to/inat_bird.tflite \
#       --dcgan_peer /path/to/peer_torch_dcgan.py [--budget_s 480] [--dry_run]
#
# 1. Installs the CUDA build of the jax pinned in requirements.txt
#    (jax[cuda12]==that version, from PyPI, into $VENV, default <repo>/.venv)
#    and, beside it in $PEER_VENV (default /tmp/catgan_torch_cuda), torch
#    2.13.0 from PyPI (its Linux wheel is the CUDA build), both at once.
# 2. Detects the GPU with nvidia-smi and takes its dense bfloat16 peak
#    (TFLOP/s, the datasheet's figure without sparsity): H100 SXM and H200
#    989.4, H100 PCIe 756.0, H100 NVL 835.0, A100 312.0, L40S 362.0, L4
#    121.0; another GPU gets no MFU. gpu.json records the name and the peak.
# 3. Times the DCGAN-64 and the R3GAN-64 (full width) steps in float32 and
#    bfloat16 at batch 64 and 256, each against its PyTorch peer on the same
#    GPU (benchmarks/step_throughput.py: alternating repeats, the peer as a
#    subprocess between them), MFU against the bfloat16 peak: step_*.json.
#    The DCGAN peer has no bfloat16 mode, so its bfloat16 rows compare with
#    the peer's float32 step; the R3GAN peer runs the same dtype.
# 4. Trains configs/r3gan64.py for the time left (less a reserve for
#    start-up and scoring), scored by MobileNetV2 and the iNat-bird
#    MobileNetV2 at 3 points (benchmarks/time_to_quality.py): ttq_r3gan64.json.
# 5. summary.json: every row above in one file, with the wall times.
#
# Every path is an argument: nothing points beside the repository, and
# nothing needs the internet but the package index. Each stage runs under
# `timeout` so that the whole stays inside --budget_s (default 480 s).
#
# --dry_run proves the path on a CPU in about a minute (quiet machine): no
# installs (the pip commands are printed), the peers on the CPU with
# $PEER_PYTHON (default /tmp/torch/bin/python), 16 px networks at width 4,
# batch 4, one timed step, a 20 s training budget with one scoring point of
# 64 samples (give it a small --data_dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="" DATA_DIR="" FEATURES_PATH="" DCGAN_PEER="" BUDGET_S=480 DRY_RUN=0

usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
  echo "device_suite: $*" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="${2:-}"; shift 2 ;;
    --data_dir) DATA_DIR="${2:-}"; shift 2 ;;
    --features_path) FEATURES_PATH="${2:-}"; shift 2 ;;
    --dcgan_peer) DCGAN_PEER="${2:-}"; shift 2 ;;
    --budget_s) BUDGET_S="${2:-}"; shift 2 ;;
    --dry_run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Every input checked before anything is written.
[[ -n "$OUT" ]] || die "--out is required (a new or empty folder)"
if [[ -e "$OUT" && -n "$(ls -A "$OUT" 2> /dev/null)" ]]; then
  die "--out=$OUT is not empty"
fi
[[ -d "$DATA_DIR" ]] || die "--data_dir=$DATA_DIR is not a folder"
IFS=, read -r -a FEATURE_FILES <<< "$FEATURES_PATH"
[[ ${#FEATURE_FILES[@]} -eq 2 ]] \
  || die "--features_path needs 2 files (MobileNetV2, iNat-bird MobileNetV2), comma-separated"
for f in "${FEATURE_FILES[@]}"; do
  [[ -f "$f" ]] || die "--features_path: no file $f"
done
[[ -f "$DCGAN_PEER" ]] || die "--dcgan_peer=$DCGAN_PEER is not a file"
[[ "$BUDGET_S" =~ ^[0-9]+$ ]] || die "--budget_s=$BUDGET_S is not a whole number of seconds"
JAX_VERSION="$(sed -n 's/^jax==//p' "$ROOT/requirements.txt")"
[[ -n "$JAX_VERSION" ]] || die "no jax== pin in $ROOT/requirements.txt"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
START=$(date +%s)
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
left() { echo $((START + BUDGET_S - $(date +%s))); }
log() { echo "device_suite [$(($(date +%s) - START)) s] $*" | tee -a "$OUT/suite.log"; }

# --- 1. Installs ------------------------------------------------------------
if [[ "$DRY_RUN" == 1 ]]; then
  PEER_PY="${PEER_PYTHON:-/tmp/torch/bin/python}"
  PEER_DEVICE=cpu
  log "dry run: would run $PY -m pip install 'jax[cuda12]==$JAX_VERSION'"
  log "dry run: would run python3 -m venv ${PEER_VENV:-/tmp/catgan_torch_cuda} && pip install torch==2.13.0 numpy"
else
  PEER_VENV="${PEER_VENV:-/tmp/catgan_torch_cuda}"
  PEER_PY="$PEER_VENV/bin/python"
  PEER_DEVICE=cuda
  log "installing jax[cuda12]==$JAX_VERSION and torch==2.13.0"
  ("$PY" -m pip install -q "jax[cuda12]==$JAX_VERSION" > "$OUT/install_jax.log" 2>&1) &
  JAX_PID=$!
  (
    [[ -x "$PEER_PY" ]] || python3 -m venv "$PEER_VENV"
    "$PEER_PY" -m pip install -q torch==2.13.0 numpy
  ) > "$OUT/install_torch.log" 2>&1 &
  TORCH_PID=$!
  wait "$JAX_PID" || die "jax[cuda12] install failed: $OUT/install_jax.log"
  wait "$TORCH_PID" || die "torch install failed: $OUT/install_torch.log"
  "$PY" -c 'import jax; assert jax.default_backend() == "gpu", jax.devices()' \
    || die "jax sees no GPU after the install"
  "$PEER_PY" -c 'import torch; assert torch.cuda.is_available()' \
    || die "torch sees no GPU after the install"
  log "installed"
fi

# --- 2. The GPU and its bfloat16 peak -----------------------------------------
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -1 || true)"
case "$GPU_NAME" in
  *H200*) PEAK=989.4 ;;
  *H100*NVL*) PEAK=835.0 ;;
  *H100*PCIe*) PEAK=756.0 ;;
  *H100*) PEAK=989.4 ;;
  *A100*) PEAK=312.0 ;;
  *L40S*) PEAK=362.0 ;;
  *L4*) PEAK=121.0 ;;
  *) PEAK=0 ;;
esac
if [[ "$DRY_RUN" == 1 ]]; then
  PEAK=0  # On the CPU: step_throughput's measured f32 matmul rate.
fi
"$PY" - "$OUT/gpu.json" "$GPU_NAME" "$PEAK" "$JAX_VERSION" << 'EOF'
import json, sys
path, name, peak, jax_version = sys.argv[1:]
json.dump({
    'gpu': name or None,
    'bf16_dense_peak_tflops': float(peak) or None,
    'peaks_used': {'H100 SXM / H200': 989.4, 'H100 NVL': 835.0,
                   'H100 PCIe': 756.0, 'A100': 312.0, 'L40S': 362.0,
                   'L4': 121.0},
    'jax_pin': jax_version,
}, open(path, 'w'), indent=1)
EOF
log "gpu: ${GPU_NAME:-none}, bf16 peak ${PEAK} TFLOP/s"

# --- 3. Step throughput against the peers -------------------------------------
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45  # Leave the peer half the GPU.
if [[ "$DRY_RUN" == 1 ]]; then
  SIZES=(--batch 4 --iters 1 --warmup 0 --repeats 1)
  DCGAN=(--model dcgan --config "$ROOT/configs/test.py")
  R3GAN=(--model r3gan --width 4 --override data.image_size=16)
  STEP_TIMEOUT=120
  BENCH_UNTIL=$((START + BUDGET_S / 2))
else
  SIZES=(--batch 64 --batch 256 --iters 10 --warmup 2 --repeats 3)
  DCGAN=(--model dcgan --config "$ROOT/configs/dcgan64.py")
  R3GAN=(--model r3gan --width 64)
  STEP_TIMEOUT=100
  BENCH_UNTIL=$((START + BUDGET_S * 3 / 4))
fi
for model in dcgan r3gan; do
  for dtype in float32 bfloat16; do
    budget=$((BENCH_UNTIL - $(date +%s)))
    ((budget > STEP_TIMEOUT)) && budget=$STEP_TIMEOUT
    if ((budget < 10)); then
      log "step $model $dtype skipped: no time left"
      continue
    fi
    if [[ "$model" == dcgan ]]; then
      peer_script="$DCGAN_PEER" model_args=("${DCGAN[@]}")
    else
      peer_script="$ROOT/tools/torch_peer/peer_r3gan.py" model_args=("${R3GAN[@]}")
    fi
    log "step $model $dtype (timeout ${budget} s)"
    timeout "$budget" "$PY" "$ROOT/benchmarks/step_throughput.py" \
      "${model_args[@]}" "${SIZES[@]}" --dtype "$dtype" \
      --peer "$PEER_PY" --peer-script "$peer_script" \
      --peer-device "$PEER_DEVICE" --peak-tflops "$PEAK" \
      --out "$OUT/step_${model}_${dtype}.json" \
      > "$OUT/step_${model}_${dtype}.log" 2>&1 \
      || log "step $model $dtype failed or timed out (exit $?): step_${model}_${dtype}.log"
  done
done

# --- 4. r3gan64 for the time left, with periodic FID ------------------------
if [[ "$DRY_RUN" == 1 ]]; then
  RESERVE=10
  TTQ=(--points 1 --num_samples 64
    --override model.g_width=4 --override model.d_width=4
    --override data.image_size=16 --override batch_size=4)
else
  RESERVE=100  # Start-up, compilation, reference features, 3 scorings.
  TTQ=(--points 3 --num_samples 2000)
fi
train_s=$(($(left) - RESERVE))
if [[ "$DRY_RUN" == 1 ]] && ((train_s > 20)); then
  train_s=20
fi
if ((train_s >= 10)); then
  log "training r3gan64 for ${train_s} s"
  timeout $(($(left) > 0 ? $(left) : 1)) "$PY" "$ROOT/benchmarks/time_to_quality.py" \
    --config "$ROOT/configs/r3gan64.py" --data_dir "$DATA_DIR" \
    --features mobilenet_v2,mobilenet_v2_inat --features_path "$FEATURES_PATH" \
    --budget_min "$(awk "BEGIN {print $train_s / 60}")" "${TTQ[@]}" \
    --workdir "$OUT/r3gan64_run" --out "$OUT/ttq_r3gan64.json" \
    > "$OUT/ttq_r3gan64.log" 2>&1 \
    || log "training failed or timed out (exit $?): ttq_r3gan64.log"
else
  log "training skipped: ${train_s} s left"
fi

# --- 5. Summary ---------------------------------------------------------------
"$PY" - "$OUT" "$(($(date +%s) - START))" << 'EOF'
import glob, json, os, sys
out, wall = sys.argv[1], int(sys.argv[2])
load = lambda p: json.load(open(p))
summary = {'wall_s': wall, **load(os.path.join(out, 'gpu.json')), 'steps': []}
for path in sorted(glob.glob(os.path.join(out, 'step_*.json'))):
  record = load(path)
  for run in record.get('runs', [record]):
    ours, peer = run['catgan_jax'], run.get('peer', {})
    summary['steps'].append({
        'file': os.path.basename(path), 'model': ours['model'],
        'dtype': ours['dtype'], 'batch': ours['batch'],
        'images_per_s': ours['images_per_s'], 'compile_s': ours['compile_s'],
        'mfu': ours['mfu'], 'peer_images_per_s': peer.get('images_per_s'),
        'peer_dtype': peer.get('dtype', 'float32'), 'ratio': run.get('ratio'),
    })
ttq = os.path.join(out, 'ttq_r3gan64.json')
if os.path.exists(ttq):
  summary['r3gan64'] = [
      {k: p.get(k) for k in ('train_wall_s', 'steps', 'fid', 'by_features')}
      for p in load(ttq)['points']]
json.dump(summary, open(os.path.join(out, 'summary.json'), 'w'), indent=1)
print(json.dumps(summary, indent=1))
EOF
log "done: $OUT/summary.json"
