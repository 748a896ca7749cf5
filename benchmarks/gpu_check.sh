#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md on one CUDA machine, in under 8 minutes:
#   bash benchmarks/gpu_check.sh [OUT_DIR]          (default OUT_DIR: $OUT, else ./gpu_check_out)
# A bare machine needs only Python and torch with CUDA: what else ascnet needs (pytorchvideo,
# fvcore, iopath, av, submitit and their pure-Python dependencies) is installed offline from the
# wheels in .whl/ (repo-ignored; fill it beforehand with benchmarks/fetch_gpu_wheels.sh on a
# machine with network access and the same Python version). Figures: benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
$PY -c "import torch" || { echo "gpu_check: torch is not installed for $PY" >&2; exit 2; }
missing=""
for mod in pytorchvideo fvcore iopath av submitit yacs; do
  $PY -c "import $mod" 2>/dev/null || missing="$missing $mod"
done
if [ -n "$missing" ]; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: missing$missing and no wheels in .whl/ (run benchmarks/fetch_gpu_wheels.sh first)" >&2
    exit 2
  fi
  echo "[gpu_check] installing$missing from .whl/"
  $PY -m pip install --quiet --no-index --find-links .whl pytorchvideo fvcore iopath av submitit yacs tabulate
  $PY -m pip install --quiet --no-index --find-links .whl scikit-learn || echo "[gpu_check] no scikit-learn wheel: data_throughput is skipped" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT_DIR/nvidia_smi.txt" || true
timeout 60 $PY benchmarks/faiss_check.py --json "$OUT_DIR/faiss_check.json" 2>&1 | tee "$OUT_DIR/faiss_check.log" || true
set +e
timeout 450 $PY benchmarks/gpu_check.py --out "$OUT_DIR/gpu_check.json" 2>&1 | tee "$OUT_DIR/gpu_check.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 0 ] && [ -n "$(command -v nvidia-smi)" ]; then
  # the data-path figures with the CUDA augmentation row (a few minutes; small sizes)
  timeout 120 $PY benchmarks/data_throughput.py --samples 16 --repeats 1 --kinetics-videos 0 \
    > "$OUT_DIR/data_throughput.log" 2>&1 || echo "[gpu_check] data_throughput did not finish" >&2
fi
echo "[gpu_check] exit $rc; figures in $OUT_DIR/"
exit "$rc"
