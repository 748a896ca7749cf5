#!/usr/bin/env bash
# Fill .whl/ (repo-ignored) with the wheels benchmarks/gpu_check.sh installs offline on the GPU
# machine (Python 3.12, manylinux_2_28 x86_64; torch, numpy, pillow, scipy, scikit-learn, pyyaml,
# tqdm, tabulate, portalocker, networkx and typing_extensions are already there): pytorchvideo,
# fvcore, iopath, av, submitit and the pure-Python dependencies the machine lacks. Under the
# 64 MiB that travels with the working tree (the script checks). faiss is left out: its GPU
# wheel alone is about 130 MB (plus its CUDA 12 runtime), so there the memory-bank figures have
# the torch rows only and benchmarks/faiss_check.py says that faiss is absent.
# fvcore, iopath and pytorchvideo are sdists on PyPI, so they are built into (pure-Python)
# wheels here. Run where the package index is reachable:  bash benchmarks/fetch_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TARGET=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p .whl
$PY -m pip wheel --quiet -w .whl --no-deps pytorchvideo==0.1.5 fvcore==0.1.5.post20221221 iopath==0.1.10
$PY -m pip download --quiet -d .whl --no-deps "${TARGET[@]}" av submitit yacs termcolor parameterized
size_kib=$(du -sk .whl | cut -f1)
ls -la .whl
echo "fetch_gpu_wheels: .whl/ holds ${size_kib} KiB (the limit that travels is 65536 KiB)"
[ "$size_kib" -lt 65536 ] || { echo "fetch_gpu_wheels: .whl/ is over 64 MiB" >&2; exit 1; }
