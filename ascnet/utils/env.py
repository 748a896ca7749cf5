"""Process environment: seeding, determinism and a short description of the software stack."""
import os
import platform
import random
import sys

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (CPU and every CUDA device) with ``seed``."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(enable: bool) -> None:
    """Switch torch's deterministic algorithms on or off (``cfg.DETERMINISTIC``).

    Deterministic CUDA matmuls need ``CUBLAS_WORKSPACE_CONFIG`` set before the first cuBLAS
    call, so it is set here when missing. cuDNN autotuning is switched off with it, since the
    picked algorithm may vary from run to run.
    """
    if enable:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(enable), warn_only=False)
    torch.backends.cudnn.deterministic = bool(enable)
    torch.backends.cudnn.benchmark = not enable and torch.cuda.is_available()


def collect_env_info() -> str:
    """A few lines naming the versions that matter for reproducing a run."""
    lines = [
        f"python {sys.version.split()[0]} on {platform.platform()}",
        f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
        + (f" ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
           if torch.cuda.is_available() else ""),
        f"numpy {np.__version__}",
    ]
    for name in ("torchvision", "pytorchvideo", "fvcore", "iopath", "av", "faiss"):
        try:
            mod = __import__(name)
            lines.append(f"{name} {getattr(mod, '__version__', '?')}")
        except Exception:  # optional package missing or broken: report, never fail
            lines.append(f"{name} not importable")
    return "\n".join(lines)
