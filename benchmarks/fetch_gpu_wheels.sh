#!/usr/bin/env bash
# Fill .whl/ (repo-ignored) with the wheels benchmarks/gpu_check.sh installs offline on a bare
# torch machine: pytorchvideo, fvcore, iopath, av, submitit and their dependencies (torch and
# its own dependencies excluded: the GPU machine has them; faiss is optional and left out: the
# memory-bank figures then have the torch rows only). fvcore, iopath and pytorchvideo are
# sdists on PyPI, so they are built into wheels here (pure Python). Run where the network is
# reachable, with the GPU machine's Python version:  PYTHON=python3.11 bash benchmarks/fetch_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
$PY -m pip wheel --quiet -w .whl --no-deps pytorchvideo==0.1.5 fvcore==0.1.5.post20221221 iopath==0.1.10
$PY -m pip download --quiet -d .whl --only-binary=:all: av submitit yacs pyyaml tqdm termcolor tabulate \
  portalocker parameterized networkx numpy pillow cloudpickle typing_extensions \
  scikit-learn scipy joblib threadpoolctl   # scikit-learn: the generated dataset of data_throughput.py
ls -la .whl
