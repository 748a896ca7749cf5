#!/usr/bin/env python
"""What the installed faiss build is, and one GPU search where it can run one.

    python benchmarks/faiss_check.py [--json OUT.json]

Prints the faiss version, ``faiss.get_compile_options()``, whether the build has GPU support,
``faiss.get_num_gpus()``, the CUDA libraries its ``libfaiss.so`` links (``libcudart.so.12``:
the CUDA 12 runtime, ``.13``: CUDA 13) beside torch's CUDA version, and the GPU architectures
compiled into it (machine code ``sm_XY`` and ``ptx_XY``), read from the library's embedded
fatbinary: faiss exposes none of this, and ``cuobjdump`` is not on every machine, so the few
lines of the fatbinary header format are read here. Then, when the build has GPU support and
sees a GPU, it runs one exact inner-product search on that GPU and compares it with the CPU
index; otherwise it says which of the two is missing and runs the CPU search alone.

Exit status: 0 when every search that could run agreed (a missing GPU build or GPU is not an
error), 1 when a search failed or disagreed, 2 when faiss is not installed.
"""
import argparse
import glob
import json
import os
import re
import struct
import sys
from typing import Dict, List

FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)


def fatbin_architectures(path: str) -> List[str]:
    """The ``sm_XY`` (machine code) and ``ptx_XY`` entries of every fatbinary in a shared library.

    Fatbinary layout (the format cuobjdump reads): a 16-byte header (magic 0xBA55ED50, u16 version
    1, u16 header size 16, u64 payload size), then entries of u16 kind (1 PTX, 2 ELF), u16, u32
    entry-header size, u64 payload size, ..., u32 architecture at byte 28.
    """
    with open(path, "rb") as f:
        data = f.read()
    found = set()
    pos = 0
    while True:
        i = data.find(FATBIN_MAGIC, pos)
        if i < 0 or i + 16 > len(data):
            break
        version, header, size = struct.unpack_from("<HHQ", data, i + 4)
        if version != 1 or header != 16:
            pos = i + 4
            continue
        e, end = i + header, min(i + header + size, len(data))
        while e + 32 <= end:
            kind, _, entry_header, entry_size = struct.unpack_from("<HHIQ", data, e)
            arch = struct.unpack_from("<I", data, e + 28)[0]
            if kind in (1, 2):
                found.add(("ptx" if kind == 1 else "sm", arch))
            if entry_header == 0:
                break
            e += entry_header + entry_size
        pos = max(end, i + 4)
    return [f"{k}_{a}" for k, a in sorted(found, key=lambda t: (t[1], t[0]))]


def linked_cuda_libraries(path: str) -> List[str]:
    """The versioned CUDA libraries named in the library (its DT_NEEDED entries among them)."""
    with open(path, "rb") as f:
        data = f.read()
    names = re.findall(rb"lib(?:cudart|cublas|cublasLt|curand|cuvs|nvJitLink)\.so\.\d+", data)
    return sorted({n.decode() for n in names})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="", help="also write the findings to this file")
    args = parser.parse_args(argv)
    try:
        import faiss
    except ImportError as e:
        print(f"faiss_check: faiss is not installed ({e}); pip install -e . installs it", file=sys.stderr)
        return 2
    import numpy as np

    info: Dict[str, object] = {"faiss_version": faiss.__version__, "faiss_file": faiss.__file__}
    info["compile_options"] = faiss.get_compile_options()
    info["gpu_build"] = hasattr(faiss, "StandardGpuResources")
    info["num_gpus"] = faiss.get_num_gpus() if info["gpu_build"] else 0
    # faiss/libfaiss.so (official wheels) or faiss_*.libs/libfaiss-<hash>.so (auditwheel-repaired ones)
    pkg = os.path.dirname(faiss.__file__)
    libs = sorted(glob.glob(os.path.join(pkg, "libfaiss*.so*"))) + sorted(
        glob.glob(os.path.join(os.path.dirname(pkg), "faiss*.libs", "libfaiss*.so*")))
    if libs:
        lib = libs[0]
        info["library"] = lib
        info["linked_cuda_libraries"] = linked_cuda_libraries(lib)
        info["compiled_architectures"] = fatbin_architectures(lib)
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            info["device"] = torch.cuda.get_device_name(0)
            info["device_architecture"] = f"sm_{major}{minor}"
    except ImportError:
        pass
    for k, v in info.items():
        print(f"faiss_check: {k}: {v}")
    if "device_architecture" in info and "compiled_architectures" in info:
        arch = info["device_architecture"][3:]
        has_sass = f"sm_{arch}" in info["compiled_architectures"]
        print(f"faiss_check: machine code for this GPU ({info['device_architecture']}): "
              f"{'yes' if has_sass else 'NO (PTX JIT or no kernel image)'}")

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((20000, 128)).astype("float32")
    queries = rng.standard_normal((256, 128)).astype("float32")
    k = 10
    cpu = faiss.IndexFlatIP(128)
    cpu.add(gallery)
    d_cpu, i_cpu = cpu.search(queries, k)
    ref = np.argsort(-(queries @ gallery.T), axis=1)[:, :k]
    info["cpu_search_ok"] = bool((i_cpu == ref).mean() > 0.999)
    print(f"faiss_check: CPU IndexFlatIP search: {'ok' if info['cpu_search_ok'] else 'WRONG'}")
    status = 0 if info["cpu_search_ok"] else 1
    if not info["gpu_build"]:
        print("faiss_check: this faiss build has NO GPU support (faiss-cpu): GPU search skipped")
    elif info["num_gpus"] == 0:
        print("faiss_check: GPU build, but faiss sees NO GPU: GPU search skipped")
    else:
        try:
            res = faiss.StandardGpuResources()
            gpu = faiss.GpuIndexFlatIP(res, 128)
            gpu.add(gallery)
            d_gpu, i_gpu = gpu.search(queries, k)
            agree = float((i_gpu == i_cpu).mean())
            info["gpu_search_agreement"] = agree
            info["gpu_search_max_abs_diff"] = float(np.abs(d_gpu - d_cpu).max())
            ok = agree > 0.99 and info["gpu_search_max_abs_diff"] < 1e-3
            print(f"faiss_check: GPU IndexFlatIP search on device 0: {'ok' if ok else 'DISAGREES'} "
                  f"(neighbours equal to the CPU's: {agree:.4f}, max |sim diff| {info['gpu_search_max_abs_diff']:.2e})")
            status = status if ok else 1
        except Exception as e:  # "no kernel image is available" on a GPU the build lacks code for
            info["gpu_search_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"faiss_check: GPU search FAILED: {info['gpu_search_error']}")
            status = 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
