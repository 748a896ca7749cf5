"""What auto-resume checks before it continues a run from its ``OUTPUT_DIR``.

A checkpoint stores the config of the run that wrote it. Before ``TRAIN.AUTO_RESUME`` loads one,
the keys that define the model and what it is trained for (:data:`MODEL_DEFINING_KEYS`, plus
the ``MODEL_DEFINING_KEYS`` the model class of ``MODEL.META_ARCH`` declares as a
:class:`~ascnet.modeling.protocol.PretrainModel`) are compared with the new config: a difference means that ``OUTPUT_DIR`` holds another run (e.g. a
config whose ``_BASE_`` inherits the quickstart's ``OUTPUT_DIR``), and the run stops with one
message naming the differing keys instead of failing on a state-dict mismatch, or, worse,
continuing someone else's run. Every other key (learning rate, epochs, batch size, loader,
logging, ...) may change between restarts.
"""
from typing import Any, Dict, List, Tuple

import yaml
from fvcore.common.config import CfgNode

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


def _defining(key: str, keys: Tuple[str, ...]) -> bool:
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
