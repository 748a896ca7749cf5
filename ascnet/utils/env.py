"""Process environment: seeding, determinism and a short description of the software stack."""
import os
import platform
import random
import signal
import sys

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (CPU and every CUDA device) with ``seed``."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def reset_child_signals() -> None:
    """Give a forked helper process (a loader worker) the signal state it needs: nothing blocked.

    A worker forked while the training process holds SIGTERM and SIGUSR2 back
    (``ascnet.engine.preemption.defer_signals``) inherits that blocked mask, and then ignores the
    SIGTERM with which the loader and multiprocessing's exit handler stop it, and joins hang
    forever. So, first thing in the worker: SIGTERM back to its default action (end), SIGUSR2
    ignored (the cluster's checkpoint request, which SLURM sends to every process of the job, is
    for the training process; the worker must neither die of it nor run the inherited Python
    handler), then an empty mask, which delivers anything that arrived meanwhile.
    """
    for name, action in (("SIGTERM", signal.SIG_DFL), ("SIGUSR2", signal.SIG_IGN)):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), action)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_SETMASK, [])


def quiet_abandoned_handle_transfers() -> None:
    """In a loader worker: no traceback when the main process abandons a tensor hand-over.

    Workers hand batches to the main process through file descriptors (torch's default
    ``file_descriptor`` sharing strategy), each served by multiprocessing's ``resource_sharer``
    thread, which prints any error through ``sys.excepthook``. A stop (Ctrl-C, SIGTERM) that
    lands in the main process while it receives a batch abandons the connection mid-handshake,
    and the worker's thread printed a traceback under the run's one-line stop message. Errors of
    a peer that went away (EOF, reset, broken pipe) are dropped here; any other still prints.
    """
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (EOFError, ConnectionError)):
            return
        previous(exc_type, exc, tb)

    sys.excepthook = hook


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
