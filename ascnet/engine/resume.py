"""The resume policy of the trainer: what auto-resume checks before it continues a run from its
``OUTPUT_DIR``, where it continues, and what a fresh start may overwrite.

A checkpoint stores the config of the run that wrote it. Before ``TRAIN.AUTO_RESUME`` loads one,
the keys that define the model and what it is trained for (:data:`MODEL_DEFINING_KEYS`, plus
the ``MODEL_DEFINING_KEYS`` the model class of ``MODEL.META_ARCH`` declares as a
:class:`~ascnet.modeling.protocol.PretrainModel`) are compared with the new config: a difference means that ``OUTPUT_DIR`` holds another run (e.g. a
config whose ``_BASE_`` inherits the quickstart's ``OUTPUT_DIR``), and the run stops with one
message naming the differing keys instead of failing on a state-dict mismatch, or, worse,
continuing someone else's run. Every other key (learning rate, epochs, batch size, loader,
logging, ...) may change between restarts.
"""
import logging
import os
from typing import Any, Dict, List, Mapping, Tuple

import yaml
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from ascnet.utils.checkpoint import CheckpointError, Checkpointer, read_checkpoint

logger = logging.getLogger(__name__)

# Keys (or key prefixes, ending in ".") that must be equal to resume any run: the model, the
# clip shape it was built for, and the task. A pretraining method adds its own keys through its
# class attribute MODEL_DEFINING_KEYS (ASCNet: ASCNET., MEMORY_BANK., TEACHER., DATA.SPEEDS).
MODEL_DEFINING_KEYS: Tuple[str, ...] = ("MODEL.", "DATA.NUM_FRAMES", "DATA.CROP_SIZE", "TASK")


def model_defining_keys(cfg: CfgNode) -> Tuple[str, ...]:
    """:data:`MODEL_DEFINING_KEYS` and those declared by the model class ``cfg.MODEL.META_ARCH``
    (none when the name is not registered: building the model reports that)."""
    from ascnet.modeling import MODEL_REGISTRY
    from ascnet.modeling.protocol import model_defining_keys as declared

    name = cfg.MODEL.META_ARCH
    cls = MODEL_REGISTRY.get(name) if name in MODEL_REGISTRY.names() else None
    return MODEL_DEFINING_KEYS + declared(cls)


def _flatten(d: Any, prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


# Keys under those prefixes that change how the model runs, not what it is (they may change).
RUN_ONLY_KEYS: Tuple[str, ...] = ("MODEL.CHANNELS_LAST", "MODEL.COMPILE")


def _defining(key: str, keys: Tuple[str, ...]) -> bool:
    if key in RUN_ONLY_KEYS:
        return False
    return any(key.startswith(p) if p.endswith(".") else key == p for p in keys)


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def model_defining_differences(stored: str, cfg: CfgNode) -> List[Tuple[str, Any, Any]]:
    """Keys of :func:`model_defining_keys` whose values differ between two configs.

    Args:
        stored: the YAML dump of the config that wrote the checkpoint.
        cfg: the config of the run about to resume.

    Returns:
        ``[(key, stored value, new value)]`` sorted by key, for keys present in both configs
        (a key that only one version of the code knows is not a difference).
    """
    old = _flatten(yaml.safe_load(stored) or {})
    new = _flatten(yaml.safe_load(cfg.dump()) or {})
    keys = model_defining_keys(cfg)
    return sorted(
        (k, old[k], new[k]) for k in old.keys() & new.keys() if _defining(k, keys) and _norm(old[k]) != _norm(new[k])
    )


def other_run_message(output_dir: str, checkpoint: str, diffs: List[Tuple[str, Any, Any]]) -> str:
    """The one-line refusal for a folder that holds another run."""
    shown = "; ".join(f"{k}: {a!r} there, {b!r} here" for k, a, b in diffs[:6])
    more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
    return (
        f"OUTPUT_DIR {output_dir!r} holds another run: its checkpoint {checkpoint} was trained with other "
        f"model-defining keys ({shown}{more}). Set a new OUTPUT_DIR for this run (or remove that folder)."
    )


def check_same_run(cfg: CfgNode, path: str) -> None:
    """Refuse to resume from ``path`` when it was written by a run with other model-defining
    keys (:func:`model_defining_keys`). The stored config is the checkpoint's ``cfg`` entry,
    else ``OUTPUT_DIR/config.yaml`` (nothing to compare without either).

    Raises:
        CheckpointError: the folder holds another run (the message names the keys).
    """
    stored = read_checkpoint(path, mmap=True).get("cfg")
    if not isinstance(stored, str):
        cfg_file = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
        if not g_pathmgr.exists(cfg_file):
            return
        with g_pathmgr.open(cfg_file, "r") as f:
            stored = f.read()
    diffs = model_defining_differences(stored, cfg)
    if diffs:
        raise CheckpointError(other_run_message(cfg.OUTPUT_DIR, path, diffs), path)


def check_fresh_start(checkpointer: Checkpointer, auto_resume: bool) -> None:
    """A run that starts from iteration 0 must not overwrite checkpoints in its folder.

    Args:
        checkpointer: the run's checkpointer (its folder is checked).
        auto_resume: ``TRAIN.AUTO_RESUME`` (only names the reason in the message).

    Raises:
        CheckpointError: the checkpoint folder holds checkpoint files (with
            ``TRAIN.AUTO_RESUME False``, or none of them readable).
    """
    existing = checkpointer.list_checkpoints()
    if existing:
        if auto_resume:
            why, fix = "none of them could be resumed (see the warnings above)", "Move them away"
        else:
            why, fix = "TRAIN.AUTO_RESUME is False", "Set TRAIN.AUTO_RESUME True to continue that run"
        raise CheckpointError(
            f"{checkpointer.save_dir!r} already holds {len(existing)} checkpoint(s) (e.g. "
            f"{os.path.basename(existing[-1])}) and {why}: starting over would overwrite them. {fix}, "
            "or set a new OUTPUT_DIR.",
            existing[-1],
        )


def resume_position(extra: Mapping[str, Any], iters_per_epoch: int) -> Tuple[int, int, int]:
    """Where a run resumed from a checkpoint continues.

    Args:
        extra: the checkpoint's entries (``iteration``, ``epoch``, ``epoch_iter``,
            ``iters_per_epoch``).
        iters_per_epoch: this run's iterations per epoch.

    Returns:
        ``(iteration, epoch, epoch_iter)``: mid-epoch when the checkpoint was written with the
        same iterations per epoch, else (batch size or number of processes changed) at the start
        of the next epoch; a finished epoch continues with the next one.
    """
    it, epoch, epoch_iter = int(extra.get("iteration", 0)), int(extra.get("epoch", 0)), int(extra.get("epoch_iter", 0))
    saved_ipe = int(extra.get("iters_per_epoch", iters_per_epoch))
    if saved_ipe != iters_per_epoch and epoch_iter:
        logger.warning(
            "The checkpoint was written with %d iterations per epoch, this run has %d (batch size "
            "or number of processes changed): resuming at the start of epoch %d instead of mid-epoch.",
            saved_ipe, iters_per_epoch, epoch + 2,
        )
        epoch, epoch_iter = epoch + 1, 0
    if epoch_iter >= iters_per_epoch:
        epoch, epoch_iter = epoch + 1, 0
    return it, epoch, epoch_iter
