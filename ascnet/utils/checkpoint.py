"""Checkpoints: atomic writes, a ``last_checkpoint`` pointer, safe loading, RNG states.

Layout::

    OUTPUT_DIR/checkpoints/<name>.pyth      # one file per save
    OUTPUT_DIR/checkpoints/last_checkpoint  # the name of the newest complete file

A checkpoint holds ``model`` (the state of the unwrapped model: DistributedDataParallel
wrappers, of the whole model or of submodules, are removed from the key names; memory banks
are buffers of the model so they come with it), ``optimizer``, ``scheduler``, ``scaler``, any
extra stateful objects given to the :class:`Checkpointer`, ``rng`` (python / numpy / torch /
CUDA generator states of the saving process) and whatever ``save(name, **extra)`` is given
(iteration, epoch, the config dump, ...).

Why not fvcore's ``Checkpointer``: its ``save`` writes ``torch.save`` straight into the final
file (a crash mid-write leaves a truncated checkpoint that ``last_checkpoint`` may already
name), and its ``_load_file`` calls ``torch.load`` without ``weights_only``. Overriding both,
plus RNG states and DDP-submodule key mapping, would leave little of it; this class keeps its
method names (``save``, ``load``, ``has_checkpoint``, ``get_checkpoint_file``,
``resume_or_load``) so users of detectron2 find their way.

Writes are atomic: the file is streamed into a temporary file in the same folder, flushed and
fsync'ed, then renamed over the final name (``os.replace``); the pointer file is written the
same way only afterwards. A crash at any moment leaves the previous checkpoint and pointer
intact. Loading uses ``torch.load(..., weights_only=True)``: a file that needs arbitrary
unpickling (code execution) is refused.
"""
import io
import logging
import os
import pickle
import random
import uuid
from typing import Any, Dict, Optional

import numpy as np
import torch
from iopath.common.file_io import g_pathmgr
from torch import nn

from ascnet.utils import distributed as du
from ascnet.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

POINTER_FILE = "last_checkpoint"
SUFFIX = ".pyth"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit; the message says why and what to do."""


# ------------------------------------------------------------------------------------------------
# RNG states
# ------------------------------------------------------------------------------------------------
def get_rng_state() -> Dict[str, Any]:
    """States of python's, numpy's, torch's and (if present) every CUDA generator.

    Only plain types and tensors, so the result loads with ``weights_only=True`` (numpy's
    key array is stored as a tensor).
    """
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states saved by :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


# ------------------------------------------------------------------------------------------------
# DDP-free state dicts
# ------------------------------------------------------------------------------------------------
def _ddp_prefixes(model: nn.Module):
    """Name prefixes (``"" `` or ``"online."``) of DDP/DP wrappers inside ``model``."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            out.append(f"{name}." if name else "")
    return sorted(out, key=len, reverse=True)


def _strip_key(key: str, prefixes) -> str:
    return du.strip_ddp_key(key, prefixes)


def model_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``model.state_dict()`` with every DDP/DP ``module.`` level removed from the names."""
    prefixes = _ddp_prefixes(model)
    return {_strip_key(k, prefixes): v for k, v in model.state_dict().items()}


def load_model_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], strict: bool = True):
    """Load a DDP-free state dict into ``model`` whatever DDP wrappers it holds now.

    Returns:
        torch's ``_IncompatibleKeys`` (missing and unexpected keys, DDP-free names).
    """
    prefixes = _ddp_prefixes(model)
    clean_to_real = {_strip_key(k, prefixes): k for k in model.state_dict().keys()}
    renamed = {clean_to_real.get(k, k): v for k, v in state.items()}
    result = model.load_state_dict(renamed, strict=strict)
    return result


# ------------------------------------------------------------------------------------------------
# Checkpointer
# ------------------------------------------------------------------------------------------------
class Checkpointer:
    """Saves and restores a run's full state under ``output_dir/checkpoints``.

    Args:
        output_dir: the run's OUTPUT_DIR (any iopath URI).
        model: the model, possibly DDP-wrapped (or with DDP-wrapped submodules).
        optimizer, scheduler, scaler: optional objects with ``state_dict``/``load_state_dict``.
        max_to_keep: keep only the newest N checkpoint files written by this run (0 = all).
        **stateful: more objects with ``state_dict``/``load_state_dict`` (saved by name).
    """

    def __init__(
        self,
        output_dir: str,
        model: nn.Module,
        optimizer: Optional[Any] = None,
        scheduler: Optional[Any] = None,
        scaler: Optional[Any] = None,
        max_to_keep: int = 0,
        **stateful: Any,
    ):
        self.output_dir = output_dir
        self.save_dir = os.path.join(output_dir, "checkpoints")
        self.model = model
        self.checkpointables: Dict[str, Any] = {}
        for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
            if obj is not None:
                self.checkpointables[name] = obj
        for name, obj in stateful.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"Checkpointer: {name!r} needs state_dict() and load_state_dict().")
            self.checkpointables[name] = obj
        self.max_to_keep = max_to_keep
        self._saved: list = []

    # -- paths -----------------------------------------------------------------------------
    def path_of(self, name: str) -> str:
        """Full path of checkpoint ``name`` (without suffix)."""
        return os.path.join(self.save_dir, name + SUFFIX)

    def has_checkpoint(self) -> bool:
        """True when ``last_checkpoint`` exists in the checkpoint folder."""
        return g_pathmgr.exists(os.path.join(self.save_dir, POINTER_FILE))

    def get_checkpoint_file(self) -> str:
        """Path of the newest complete checkpoint ("" when there is none)."""
        pointer = os.path.join(self.save_dir, POINTER_FILE)
        try:
            with g_pathmgr.open(pointer, "r") as f:
                name = f.read().strip()
        except (IOError, OSError):
            return ""
        return os.path.join(self.save_dir, name) if name else ""

    # -- save ------------------------------------------------------------------------------
    def state(self, **extra: Any) -> Dict[str, Any]:
        """The dict that :meth:`save` writes."""
        data = {"model": model_state_dict(self.model)}
        for name, obj in self.checkpointables.items():
            data[name] = obj.state_dict()
        data["rng"] = get_rng_state()
        data.update(extra)
        return data

    def save(self, name: str, **extra: Any) -> Optional[str]:
        """Write ``<save_dir>/<name>.pyth`` atomically, then point ``last_checkpoint`` at it.

        Only rank 0 writes; other ranks return None at once (no collective: it is safe to call
        from a signal handler on every rank).

        Args:
            name: file name without suffix (e.g. ``"checkpoint_epoch_00003"``).
            **extra: more entries (iteration, epoch, cfg dump, ...); plain types or tensors.

        Returns:
            The path written (rank 0) or None.
        """
        if not du.is_main_process():
            return None
        data = self.state(**extra)
        path = self.path_of(name)
        g_pathmgr.mkdirs(self.save_dir)
        self._write(path, data)
        atomic_write_bytes(os.path.join(self.save_dir, POINTER_FILE), (name + SUFFIX).encode("utf-8"))
        logger.info("Saved checkpoint %s", path)
        self._saved.append(path)
        self._prune()
        return path

    def _write(self, path: str, data: Dict[str, Any]) -> None:
        if "://" in path:
            # Non-local URI: serialise in memory, then iopath's write-then-rename.
            buf = io.BytesIO()
            torch.save(data, buf)
            atomic_write_bytes(path, buf.getvalue())
            return
        local = self.save_dir
        # Local files are written with open()/os.fsync()/os.replace() directly: iopath's
        # PathManager has no fsync and no atomic rename, and durability is the point here.
        final = os.path.join(local, os.path.basename(path))
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            # Streamed straight into the temporary file: no second in-memory copy.
            with open(tmp, "wb") as f:
                torch.save(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        try:  # make the rename itself durable
            fd = os.open(local, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def _prune(self) -> None:
        if self.max_to_keep <= 0:
            return
        while len(self._saved) > self.max_to_keep:
            old = self._saved.pop(0)
            if old in self._saved:  # the same name saved again later: keep it
                continue
            try:
                g_pathmgr.rm(old)
            except (IOError, OSError) as e:
                logger.warning("Could not remove old checkpoint %s: %s", old, e)

    # -- load ------------------------------------------------------------------------------
    @staticmethod
    def read(path: str) -> Dict[str, Any]:
        """Read a checkpoint file with ``torch.load(weights_only=True)`` onto the CPU.

        Raises:
            CheckpointError: the file is missing, truncated, or needs arbitrary unpickling.
        """
        if not g_pathmgr.exists(path):
            raise CheckpointError(f"Checkpoint {path!r} does not exist. Check the path (TRAIN/TEST.CHECKPOINT_FILE_PATH).")
        with g_pathmgr.open(path, "rb") as f:
            try:
                return torch.load(f, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as e:
                raise CheckpointError(
                    f"Refusing to load {path!r}: it holds objects that only arbitrary unpickling can "
                    f"rebuild (which could run code), and ascnet loads checkpoints with "
                    f"torch.load(weights_only=True). If you trust the file, convert it once to plain "
                    f"tensors: torch.save({{'model': torch.load(path, weights_only=False)['model']}}, new_path). "
                    f"Details: {e}"
                ) from e
            except (RuntimeError, EOFError) as e:
                raise CheckpointError(f"Checkpoint {path!r} is unreadable (truncated or corrupt?): {e}") from e

    def load(self, path: str, checkpointables: Optional[list] = None, strict: bool = True, rng: bool = True) -> Dict[str, Any]:
        """Restore the model (and other objects) from ``path``.

        Args:
            path: checkpoint file.
            checkpointables: names of objects to restore besides the model (default: all
                that are in the file and registered here). ``[]`` loads the model only.
            strict: the model's keys must match exactly.
            rng: restore the RNG states on rank 0 (other ranks keep their own seeding, since a
                checkpoint holds rank 0's generators only).

        Returns:
            The entries not consumed (iteration, epoch, user extras, ...).
        """
        logger.info("Loading checkpoint from %s", path)
        data = self.read(path)
        if "model" not in data:
            raise CheckpointError(f"Checkpoint {path!r} has no 'model' entry (keys: {sorted(data)}).")
        result = load_model_state_dict(self.model, data.pop("model"), strict=strict)
        if not strict and (result.missing_keys or result.unexpected_keys):
            logger.warning("Missing keys: %s\nUnexpected keys: %s", result.missing_keys, result.unexpected_keys)
        names = list(self.checkpointables) if checkpointables is None else checkpointables
        for name in names:
            if name in data and name in self.checkpointables:
                self.checkpointables[name].load_state_dict(data.pop(name))
            elif name in self.checkpointables:
                logger.warning("Checkpoint %s has no %r state; it keeps its initial state.", path, name)
        rng_state = data.pop("rng", None)
        if rng and rng_state is not None and du.is_main_process():
            set_rng_state(rng_state)
        for name in list(self.checkpointables):
            data.pop(name, None)
        return data

    def resume_or_load(self, path: str, resume: bool = True) -> Dict[str, Any]:
        """Resume from the last checkpoint when ``resume`` and one exists; else load ``path``'s model.

        Returns:
            The checkpoint's extra entries when resuming; ``{}`` otherwise.
        """
        if resume and self.has_checkpoint():
            return self.load(self.get_checkpoint_file())
        if path:
            self.load(path, checkpointables=[], rng=False)
        return {}
