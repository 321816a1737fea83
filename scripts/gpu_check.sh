#!/usr/bin/env bash
# The prepared GPU check (issue [5/5]): everything docs/PERFORMANCE.md's GPU section needs, in
# about 5 minutes on one H100/H200, so it can run twice inside a short GPU lease.
#
#   scripts/gpu_check.sh [OUT_DIR] [DEVICE]      # OUT_DIR: default $OUT, else ./gpu-check
#                                                # DEVICE: cuda (default) or cpu (dry path)
#
# It needs a Python with torch (CUDA build; an older torch may do) and numpy, scikit-learn,
# matplotlib, pillow and tqdm already installed; nothing is downloaded. probssl itself runs
# from this checkout (PYTHONPATH), or is installed with
# `pip install --no-deps --no-build-isolation -e .` when that works. Each step has its own time
# limit; a failed step is reported and the next one runs. Results: OUT_DIR/summary.md (printed
# at the end), throughput.json/.md, simvae-paper.json, the logs.
#
# Sizes (environment): GPU_CHECK_IMAGES (60000, MNIST-sized), GPU_CHECK_EPOCHS (2),
# GPU_CHECK_SKIP (comma list of steps to skip: tests, throughput, train, parallel,
# torchrun).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-${OUT:-gpu-check}}"
DEVICE="${2:-cuda}"
PY="${PYTHON:-python3}"
IMAGES="${GPU_CHECK_IMAGES:-60000}"
EPOCHS="${GPU_CHECK_EPOCHS:-2}"
SKIP=",${GPU_CHECK_SKIP:-},"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SUMMARY="$OUT_DIR/summary.md"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$ROOT"

case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check: DEVICE must be cuda or cpu, not $DEVICE" >&2; exit 2;; esac
if [[ ! "$IMAGES" =~ ^[0-9]+$ || "$IMAGES" -lt 256 || ! "$EPOCHS" =~ ^[0-9]+$ || "$EPOCHS" -lt 1 ]]; then
  echo "gpu_check: GPU_CHECK_IMAGES must be >= 256 and GPU_CHECK_EPOCHS >= 1" >&2; exit 2
fi

say() { echo "$*" >>"$SUMMARY"; }
skipped() { [[ "$SKIP" == *",$1,"* ]]; }
# run NAME SECONDS CMD...: output to OUT_DIR/NAME.log; one summary line with status and time
run() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  local rc=$?
  local status="ok"; [[ $rc -ne 0 ]] && status="FAILED (exit $rc$([[ $rc -eq 124 ]] && echo ', time limit'))"
  say "- $name: $status in $((SECONDS - t0)) s (log: $name.log)"
  return $rc
}

: >"$SUMMARY"
say "# probssl GPU check ($(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE)"
say ""
if ! "$PY" - >"$OUT_DIR/env.txt" 2>&1 <<'EOF'
import importlib, platform, sys
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, available {torch.cuda.is_available()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
missing = [m for m in ("numpy", "sklearn", "matplotlib", "PIL", "tqdm")
           if importlib.util.find_spec(m) is None]
print("missing:", ", ".join(missing) or "nothing")
sys.exit(1 if missing else 0)
EOF
then
  cat "$OUT_DIR/env.txt" >&2
  echo "gpu_check: this Python lacks what probssl needs (above)" >&2; exit 2
fi
while read -r line; do say "    $line"; done <"$OUT_DIR/env.txt"
if [[ "$DEVICE" == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  say "no CUDA device visible: use DEVICE=cpu for the dry path"; exit 2
fi
"$PY" -c "import probssl" 2>/dev/null || \
  "$PY" -m pip install --no-deps --no-build-isolation -e . >"$OUT_DIR/install.log" 2>&1 || true
say ""

# 1. the tests that need CUDA (marked `cuda`; they skip without it)
if ! skipped tests; then
  if "$PY" -c "import pytest" 2>/dev/null; then
    run cuda-tests 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
  else
    say "- cuda-tests: skipped (pytest is not installed in this Python)"
  fi
fi

# 2. the device benchmark: roofline at the model's shapes, MFU, memory, projections
if ! skipped throughput; then
  run throughput 170 "$PY" -m probssl bench throughput --quick --device "$DEVICE" \
      --json "$OUT_DIR/throughput.json" && \
    sed -n '/^Device:/,/^`probssl/p' "$OUT_DIR/throughput.log" >"$OUT_DIR/throughput.md"
fi

# 3. SimVAE --preset paper on generated MNIST-sized data: time per epoch; the same with
#    --parallel 3; then one process under torchrun (NCCL on CUDA)
NPZ="$OUT_DIR/mnist-sized.npz"
if ! skipped train || ! skipped parallel || ! skipped torchrun; then
  "$PY" - "$NPZ" "$IMAGES" <<'EOF'
import sys
import numpy as np
rng = np.random.default_rng(0)
n = int(sys.argv[2])
np.savez(sys.argv[1], x=rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8),
         y=rng.integers(0, 10, n))
EOF
fi
epoch_line() {  # RUN_DIR LABEL: seconds and views/s of the last epoch, and 400 epochs projected
  "$PY" - "$1" "$2" <<'EOF' >>"$SUMMARY"
import json, sys
from pathlib import Path
rows = [json.loads(l) for l in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
last = rows[-1]
print(f"  - {sys.argv[2]}: epoch {last['epoch']} took {last['seconds']:.2f} s "
      f"({last['views_per_s']:.0f} views/s); 400 epochs at that rate: "
      f"{400 * last['seconds'] / 60:.1f} min (target on one H100/H200: <= 5 min)")
EOF
}
if ! skipped train; then
  if run simvae-paper 150 "$PY" -m probssl train --method simvae --preset paper \
      --dataset "npz:$NPZ" --epochs "$EPOCHS" --device "$DEVICE" --no-progress \
      --out "$OUT_DIR/runs/simvae-paper"; then
    epoch_line "$OUT_DIR/runs/simvae-paper" "simvae --preset paper, $IMAGES images, J=10"
    cp "$OUT_DIR/runs/simvae-paper/metrics.jsonl" "$OUT_DIR/simvae-paper.jsonl"
  fi
fi
if ! skipped parallel; then
  # three seeds as one stacked model (bench --parallel 3), evaluation kept minimal
  if run simvae-parallel3 200 "$PY" -m probssl bench --methods simvae --datasets "npz:$NPZ" \
      --preset paper --epochs "$EPOCHS" --seeds 0,1,2 --parallel 3 --device "$DEVICE" \
      --probe-epochs 1 --gmm-n-init 0 --no-mlp-probe --fid-features none --no-progress \
      --out "$OUT_DIR/runs/parallel3"; then
    cell="$(ls -d "$OUT_DIR"/runs/parallel3/runs/simvae__*seed0)"
    "$PY" - "$cell" "$IMAGES" <<'EOF' >>"$SUMMARY"
import json, sys
from pathlib import Path
last = [json.loads(l) for l in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()][-1]
k = last.get("stacked_cells", 1)
wall = last["seconds"] * k
print(f"  - --parallel {k}, {sys.argv[2]} images: epoch {last['epoch']} of {k} seeds took {wall:.2f} s "
      f"({last['views_per_s']:.0f} views/s), {last['seconds']:.2f} s per seed; the paper's MNIST "
      f"column (8 methods x 3 seeds, 400 epochs) at that rate: {8 * 400 * wall / 3600:.2f} h "
      "(target: <= 1 h)")
EOF
  fi
fi
if ! skipped torchrun; then
  if run torchrun-1proc 120 "$PY" -m torch.distributed.run --standalone --nnodes=1 \
      --nproc_per_node=1 -m probssl train --method simvae --preset paper --dataset "npz:$NPZ" \
      --epochs 1 --device "$DEVICE" --no-progress --out "$OUT_DIR/runs/torchrun"; then
    epoch_line "$OUT_DIR/runs/torchrun" "torchrun, 1 process ($([[ $DEVICE == cuda ]] && echo NCCL || echo gloo))"
  fi
  if [[ "$DEVICE" == cuda ]]; then  # SyncBatchNorm (VICReg's expander), NCCL
    run torchrun-sync-bn 120 "$PY" -m torch.distributed.run --standalone --nnodes=1 \
        --nproc_per_node=1 -m probssl train --method vicreg --dataset "npz:$NPZ" --epochs 1 \
        --sync-bn --device cuda --no-progress --out "$OUT_DIR/runs/torchrun-sync-bn"
  else
    say "- torchrun-sync-bn: skipped (SyncBatchNorm runs on CUDA only)"
  fi
fi

say ""
if [[ -f "$OUT_DIR/throughput.md" ]]; then
  say "## bench throughput --quick --device $DEVICE"
  say ""
  cat "$OUT_DIR/throughput.md" >>"$SUMMARY"
fi
cat "$SUMMARY"
! grep -q "FAILED" "$SUMMARY"
