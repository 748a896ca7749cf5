"""Checkpoints: atomic writes, a ``last_checkpoint`` pointer, safe loading, RNG states.

(Past 450 lines on purpose: the writer and the reader of one file format and its pointer, whose
recovery rules (damaged files, lost pointers, pruning) must stay consistent with each other.)

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
method names (``save``, ``load``, ``has_checkpoint``, ``get_checkpoint_file``) so users of
detectron2 find their way; the resume policy (which checkpoint, what a fresh start may
overwrite) is the trainer's (``ascnet/engine/resume.py``).

Writes are atomic (:func:`ascnet.utils.io.atomic_write`): the file is streamed into a
temporary file in the same folder, flushed and fsync'ed, then renamed over the final name
(``os.replace``); the pointer file is written the same way only afterwards. A crash at any
moment leaves the previous checkpoint and pointer intact; a full disk raises
:class:`CheckpointError` naming the file and the fix. Every checkpoint read in ascnet goes
through :func:`read_checkpoint` (``torch.load(..., weights_only=True)``): a file that needs
arbitrary unpickling (code execution) is refused, a missing, truncated or garbled one is a
one-line :class:`CheckpointError` with its path.

Resuming (:meth:`Checkpointer.find_resume_checkpoint`) does not trust the folder blindly: a
missing, empty, binary or dangling pointer falls back to the newest readable checkpoint (by the
iteration stored in it), a damaged file is moved aside to ``<name>.corrupt``, and partial
``*.tmp-*`` files of an interrupted save are removed. Pruning (``max_to_keep``) counts every
checkpoint of the folder, also those of earlier processes of the run.
"""
import logging
import os
import pickle
import random
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from iopath.common.file_io import g_pathmgr
from torch import nn

from ascnet.utils import distributed as du
from ascnet.utils.io import atomic_write, atomic_write_bytes, first_line, remove_partial_files

logger = logging.getLogger(__name__)

POINTER_FILE = "last_checkpoint"
SUFFIX = ".pyth"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, written or does not fit; the message says why and what to do.

    Attributes:
        path: the file concerned ("" when none).
        damaged: the file exists but is truncated or corrupt (auto-resume moves it aside).
    """

    def __init__(self, msg: str, path: str = "", damaged: bool = False):
        super().__init__(msg)
        self.path = path
        self.damaged = damaged


def read_checkpoint(path: str, source: str = "", mmap: bool = False) -> Dict[str, Any]:
    """Read a checkpoint file onto the CPU with ``torch.load(weights_only=True)``.

    The one reader of checkpoints in ascnet (resume, ``TRAIN/TEST.CHECKPOINT_FILE_PATH``,
    ``tools/eval_retrieval.py --checkpoint``, ``tools/export_backbone.py``, feature caches): a
    file that only arbitrary unpickling can rebuild (which could run code) is refused, a
    missing, truncated or garbled file gets a one-line message with the path and the fix.

    Args:
        path: the file (any iopath URI).
        source: where the path came from, for the message (e.g. "TRAIN.CHECKPOINT_FILE_PATH",
            "--checkpoint"); "" says "check the path".
        mmap: map a local file instead of reading it (cheap when only a few entries are used).

    Returns:
        The checkpoint's dict.

    Raises:
        CheckpointError: missing, unreadable (``damaged`` True), unsafe, or not a dict.
    """
    where = f" (from {source})" if source else ""
    if not g_pathmgr.exists(path):
        raise CheckpointError(f"Checkpoint {path!r}{where} does not exist. Check the path.", path)
    try:
        if mmap and "://" not in path:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            with g_pathmgr.open(path, "rb") as f:
                data = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e) and "global" not in str(e):  # a garbled pickle stream, not a foreign object
            raise CheckpointError(
                f"Checkpoint {path!r}{where} is unreadable (truncated or corrupt; {first_line(e, 120)}). Use another "
                "checkpoint; a run with TRAIN.AUTO_RESUME falls back to the previous one in its folder.",
                path, damaged=True,
            ) from e
        raise CheckpointError(
            f"Refusing to load {path!r}{where}: it holds objects that only arbitrary unpickling can rebuild "
            "(which could run code), and ascnet loads checkpoints with torch.load(weights_only=True). If you "
            "trust the file, convert it once to plain tensors: torch.save({'model': torch.load(path, "
            "weights_only=False)['model']}, new_path).",
            path,
        ) from e
    except (PermissionError, IsADirectoryError, FileNotFoundError) as e:  # not the file's fault: leave it
        raise CheckpointError(f"Checkpoint {path!r}{where} cannot be opened ({first_line(e, 120)}).", path) from e
    except Exception as e:  # truncated zip (OSError/RuntimeError), empty (EOFError), garbled (IndexError, ...)
        raise CheckpointError(
            f"Checkpoint {path!r}{where} is unreadable (truncated or corrupt; {first_line(e, 120)}). Use another "
            "checkpoint; a run with TRAIN.AUTO_RESUME falls back to the previous one in its folder.",
            path, damaged=True,
        ) from e
    if not isinstance(data, dict):
        raise CheckpointError(
            f"Checkpoint {path!r}{where} holds a {type(data).__name__}, not a dict of tensors. Give a file "
            "written by ascnet (or torch.save of a state dict).", path, damaged=True,
        )
    return data


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


def model_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``model.state_dict()`` with every DDP/DP ``module.`` level removed from the names."""
    prefixes = _ddp_prefixes(model)
    return {du.strip_ddp_key(k, prefixes): v for k, v in model.state_dict().items()}


def load_model_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], strict: bool = True):
    """Load a DDP-free state dict into ``model`` whatever DDP wrappers it holds now.

    Returns:
        torch's ``_IncompatibleKeys`` (missing and unexpected keys, DDP-free names).
    """
    prefixes = _ddp_prefixes(model)
    clean_to_real = {du.strip_ddp_key(k, prefixes): k for k in model.state_dict().keys()}
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
        max_to_keep: keep only the newest N checkpoint files of the folder, by stored iteration
            (0 = all); the file ``last_checkpoint`` names is always kept.
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
        self._iterations: Dict[str, Tuple[Any, int]] = {}  # path -> (file stamp, stored iteration)

    # -- paths -----------------------------------------------------------------------------
    def path_of(self, name: str) -> str:
        """Full path of checkpoint ``name`` (without suffix)."""
        return os.path.join(self.save_dir, name + SUFFIX)

    def has_checkpoint(self) -> bool:
        """True when ``last_checkpoint`` names an existing file of the checkpoint folder."""
        return not self.read_pointer()[1]

    def get_checkpoint_file(self) -> str:
        """Path of the file ``last_checkpoint`` names ("" when the pointer is missing, damaged or
        names no existing file; :meth:`find_resume_checkpoint` then looks through the folder)."""
        name, problem = self.read_pointer()
        return "" if problem else os.path.join(self.save_dir, name)

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
        previous = self.get_checkpoint_file()
        try:
            g_pathmgr.mkdirs(self.save_dir)
            self._write(path, data)
            atomic_write_bytes(os.path.join(self.save_dir, POINTER_FILE), (name + SUFFIX).encode("utf-8"))
        except (OSError, RuntimeError) as e:  # disk full: OSError, or torch's "enforce fail" RuntimeError
            cause = e
            while cause.__context__ is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            msg = (
                f"Could not write checkpoint {path!r}: {first_line(cause, 160)}. Free space under "
                f"{self.save_dir!r} (or set OUTPUT_DIR to a disk with room), then rerun with TRAIN.AUTO_RESUME "
                f"True; the last complete checkpoint, {previous or 'none yet'}, is intact and last_checkpoint "
                "still names it."
            )
            logger.error(msg)
            raise CheckpointError(msg, path) from e
        logger.info("Saved checkpoint %s", path)
        self._prune()
        return path

    def _write(self, path: str, data: Dict[str, Any]) -> None:
        # Streamed straight into the temporary file of atomic_write (no second in-memory copy).
        atomic_write(path, lambda f: torch.save(data, f))

    def _prune(self) -> None:
        """Keep the newest ``max_to_keep`` checkpoints of the folder (by stored iteration).

        Every ``*.pyth`` file in the folder counts, also those written before a restart; the
        one ``last_checkpoint`` names is always kept.
        """
        if self.max_to_keep <= 0:
            return
        keep = self.get_checkpoint_file()
        ranked = sorted(self.list_checkpoints(), key=self._order_key, reverse=True)
        for old in ranked[self.max_to_keep:]:
            if old == keep:
                continue
            try:
                g_pathmgr.rm(old)
                self._iterations.pop(old, None)
                logger.info("Removed old checkpoint %s (TRAIN.CHECKPOINT_MAX_KEEP %d)", old, self.max_to_keep)
            except (IOError, OSError) as e:
                logger.warning("Could not remove old checkpoint %s: %s", old, e)

    # -- the folder ------------------------------------------------------------------------
    def list_checkpoints(self) -> List[str]:
        """Paths of every ``*.pyth`` file in the checkpoint folder (sorted by name)."""
        if not g_pathmgr.exists(self.save_dir):
            return []
        names = g_pathmgr.ls(self.save_dir)
        return [os.path.join(self.save_dir, n) for n in sorted(names) if n.endswith(SUFFIX)]

    def _order_key(self, path: str) -> Tuple[int, int]:
        """(stored iteration, modification time) of a checkpoint; unreadable ones rank lowest.

        The iteration is read once per file version (cached by modification time and size).
        """
        try:
            st = os.stat(path) if "://" not in path else None
        except OSError:
            return (-2, 0)
        stamp = (st.st_mtime_ns, st.st_size) if st is not None else None
        cached = self._iterations.get(path)
        if cached is None or stamp is None or cached[0] != stamp:
            try:
                it = read_checkpoint(path, mmap=True).get("iteration", -1)
                it = int(it) if isinstance(it, (int, float)) else -1
            except (CheckpointError, AttributeError):
                it = -2
            cached = (stamp, it)
            self._iterations[path] = cached
        return (cached[1], stamp[0] if stamp else 0)

    def read_pointer(self) -> Tuple[str, str]:
        """The file name in ``last_checkpoint`` and what is wrong with it.

        Returns:
            ``(name, "")`` when the pointer names an existing file, else ``("", problem)`` with
            problem one of "is missing", "is empty", "is not a text file holding a file name",
            "names '<name>', which does not exist".
        """
        pointer = os.path.join(self.save_dir, POINTER_FILE)
        try:
            with g_pathmgr.open(pointer, "rb") as f:
                raw = f.read(4096)
        except (IOError, OSError):
            return "", "is missing"
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return "", "is not a text file holding a file name"
        if not name:
            return "", "is empty"
        if "/" in name or "\\" in name or not name.isprintable():
            return "", "is not a text file holding a file name"
        if not g_pathmgr.exists(os.path.join(self.save_dir, name)):
            return "", f"names {name!r}, which does not exist"
        return name, ""

    def _set_aside(self, path: str, err: "CheckpointError", repair: bool) -> None:
        """Warn about an unreadable checkpoint; with ``repair`` (main process) rename a damaged
        one to ``<name>.corrupt`` so that the next restart does not trip on it again."""
        if not (repair and err.damaged and du.is_main_process() and "://" not in path):
            logger.warning("Skipping checkpoint %s: %s", path, err)
            return
        aside = path + ".corrupt"
        try:
            os.replace(path, aside)
        except OSError as e:
            logger.warning("Skipping damaged checkpoint %s (%s); it could not be moved aside: %s", path, err, e)
            return
        self._iterations.pop(path, None)
        logger.warning("Damaged checkpoint %s moved aside to %s. %s", path, aside, err)

    def find_resume_checkpoint(self, repair: bool = True) -> str:
        """The checkpoint to resume from: the file ``last_checkpoint`` names when it is readable,
        else the newest readable checkpoint of the folder (by the iteration stored in it).

        Args:
            repair: on the main process, delete partial ``*.tmp-*`` files left by a kill during
                a save, move damaged checkpoints aside (``<name>.corrupt``) and point
                ``last_checkpoint`` at the file chosen.

        Returns:
            The path ("" when the folder holds no readable checkpoint). A warning names what
            was skipped and what is used.
        """
        pointer = os.path.join(self.save_dir, POINTER_FILE)
        if repair and du.is_main_process():
            for p in remove_partial_files(self.save_dir):
                logger.warning("Removed %s, a partial file left by an interrupted save.", p)
        name, problem = self.read_pointer()
        tried = set()
        if not problem:
            path = os.path.join(self.save_dir, name)
            try:
                read_checkpoint(path, mmap=True)
                return path
            except CheckpointError as e:
                tried.add(path)
                self._set_aside(path, e, repair)
                problem = f"names {name!r}, which is damaged"
        readable = []
        for path in self.list_checkpoints():
            if path in tried:
                continue
            try:
                read_checkpoint(path, mmap=True)
                readable.append(path)
            except CheckpointError as e:
                self._set_aside(path, e, repair)
        if not readable:
            if problem != "is missing" or tried:
                logger.warning("%s %s and the folder holds no other readable checkpoint.", pointer, problem)
            return ""
        best = max(readable, key=self._order_key)
        logger.warning(
            "%s %s: resuming from %s (iteration %d), the newest readable checkpoint in the folder.",
            pointer, problem, best, self._order_key(best)[0],
        )
        if repair and du.is_main_process():
            atomic_write_bytes(pointer, os.path.basename(best))
        return best

    # -- load ------------------------------------------------------------------------------
    @staticmethod
    def read(path: str) -> Dict[str, Any]:
        """:func:`read_checkpoint` (kept as a method for users of the detectron2 layout)."""
        return read_checkpoint(path)

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
