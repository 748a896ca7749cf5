"""What auto-resume checks before it continues a run from its ``OUTPUT_DIR``.

A checkpoint stores the config of the run that wrote it. Before ``TRAIN.AUTO_RESUME`` loads one,
the keys that define the model and what it is trained for (:data:`MODEL_DEFINING_KEYS`) are
compared with the new config: a difference means that ``OUTPUT_DIR`` holds another run (e.g. a
config whose ``_BASE_`` inherits the quickstart's ``OUTPUT_DIR``), and the run stops with one
message naming the differing keys instead of failing on a state-dict mismatch, or, worse,
continuing someone else's run. Every other key (learning rate, epochs, batch size, loader,
logging, ...) may change between restarts.
"""
from typing import Any, Dict, List, Tuple

import yaml
from fvcore.common.config import CfgNode

# Keys (or key prefixes, ending in ".") that must be equal to resume a run: the model and its
# pretraining method, the clip shape the model was built for, and the task.
MODEL_DEFINING_KEYS: Tuple[str, ...] = (
    "MODEL.", "ASCNET.", "MEMORY_BANK.", "DATA.NUM_FRAMES", "DATA.CROP_SIZE", "TASK",
)


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


def _defining(key: str) -> bool:
    if key in RUN_ONLY_KEYS:
        return False
    return any(key.startswith(p) if p.endswith(".") else key == p for p in MODEL_DEFINING_KEYS)


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def model_defining_differences(stored: str, cfg: CfgNode) -> List[Tuple[str, Any, Any]]:
    """Keys of :data:`MODEL_DEFINING_KEYS` whose values differ between two configs.

    Args:
        stored: the YAML dump of the config that wrote the checkpoint.
        cfg: the config of the run about to resume.

    Returns:
        ``[(key, stored value, new value)]`` sorted by key, for keys present in both configs
        (a key that only one version of the code knows is not a difference).
    """
    old = _flatten(yaml.safe_load(stored) or {})
    new = _flatten(yaml.safe_load(cfg.dump()) or {})
    return sorted(
        (k, old[k], new[k]) for k in old.keys() & new.keys() if _defining(k) and _norm(old[k]) != _norm(new[k])
    )


def other_run_message(output_dir: str, checkpoint: str, diffs: List[Tuple[str, Any, Any]]) -> str:
    """The one-line refusal for a folder that holds another run."""
    shown = "; ".join(f"{k}: {a!r} there, {b!r} here" for k, a, b in diffs[:6])
    more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
    return (
        f"OUTPUT_DIR {output_dir!r} holds another run: its checkpoint {checkpoint} was trained with other "
        f"model-defining keys ({shown}{more}). Set a new OUTPUT_DIR for this run (or remove that folder)."
    )
