"""Loading, overriding and validating configs.

(Past 450 lines on purpose: the one path from YAML to a checked config, below; the checks that
span several keys (:func:`validate_cfg`) belong with it, being part of every load.)

The flow of :func:`load_config`:

1. read the YAML (safe loader) and resolve ``_BASE_`` inheritance (paths relative to the file);
2. import the plugins it lists (``PLUGINS``, plus the ``ascnet.plugins`` entry points) with the
   loader the engine passes in (:func:`ascnet.engine.plugins.load_config`), and let each plugin
   that defines ``add_config(cfg)`` add its keys;
3. check every key of the YAML and of the command-line overrides against the defaults
   (unknown key -> the closest existing key is suggested; wrong type -> the expected type);
4. merge, then validate values that depend on each other (:func:`validate_cfg`).

Every mistake becomes a :class:`ConfigError` whose message names the key and the fix.
"""
import ast
import difflib
import logging
import os
import sys
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import yaml
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from .defaults import _C

BASE_KEY = "_BASE_"

# Keys that moved: old name -> new name. A config that still uses an old name is refused with
# a one-line error naming the new key (the value means the same under it).
RENAMED_KEYS: Dict[str, str] = {
    "ASCNET.EMA_BASE": "TEACHER.EMA_BASE",
    "ASCNET.TARGET_BN_MODE": "TEACHER.BN_MODE",
    "ASCNET.SPEEDS": "DATA.SPEEDS",
}


class ConfigError(ValueError):
    """A config mistake the user can fix; the message says which key and how."""


def get_cfg() -> CfgNode:
    """Return a fresh copy of the defaults (``ascnet/config/defaults.py``)."""
    return _C.clone()


# ------------------------------------------------------------------------------------------------
# YAML reading
# ------------------------------------------------------------------------------------------------
def _read_yaml(path: str, named_by: Optional[str] = None) -> Dict[str, Any]:
    """The mapping in the YAML file ``path``; ``named_by``: the file whose ``_BASE_`` names it."""
    if not g_pathmgr.exists(path):
        if named_by:
            raise ConfigError(f"Config file not found: {path!r}, named by _BASE_ in {named_by!r}. Fix that _BASE_ "
                              "entry (a path relative to the file that holds it).")
        raise ConfigError(f"Config file not found: {path!r}. Check the path given to --cfg.")
    with g_pathmgr.open(path, "r") as f:
        try:
            data = yaml.safe_load(f)  # never yaml.load: a config must not run code
        except yaml.YAMLError as e:
            raise ConfigError(f"Config file {path!r} is not valid YAML (safe loader): {e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"Config file {path!r} is not a text (UTF-8) file ({e.reason} at byte {e.start}): "
                              "give --cfg a YAML config.") from None
    if data is None:
        logging.getLogger(__name__).warning(
            "Config file %r is empty: the run uses the defaults for every key it does not override.", path)
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path!r} must hold a mapping of keys, got {type(data).__name__}.")
    return data


def _deep_merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _normalise(path: str) -> str:
    """The path a cycle check compares: ``a/./b.yaml``, ``a/../a/b.yaml`` and ``a/b.yaml`` agree."""
    if "://" in path:
        return path
    return os.path.realpath(os.path.expanduser(path))


class _BaseLoader(CfgNode):
    """fvcore's ``CfgNode.load_yaml_with_base`` (safe loader, ``_BASE_`` relative to the file,
    later bases override earlier ones) with what it lacks:

    - cycle detection (fvcore recurses until ``RecursionError``): the chain of normalised paths
      being read is kept, a file met again is a one-line error naming the cycle;
    - a one-line error naming the file for a missing file, invalid YAML, an empty file or a
      file that does not hold a mapping (fvcore raises ``FileNotFoundError``, ``YAMLError`` or
      ``TypeError``);
    - iopath URIs (``manifold://``, ``s3://``) as bases: fvcore only keeps ``/``, ``~`` and
      ``http(s)://`` paths as they are and would join the others to the file's folder.
    """

    _chain: List[str] = []

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
        norm = _normalise(filename)
        if norm in cls._chain:
            names = cls._chain[cls._chain.index(norm):] + [norm]
            raise ConfigError(f"_BASE_ cycle: {' -> '.join(names)}; remove one of these _BASE_ entries.")
        # Clear errors first; fvcore then reads the same file.
        data = _read_yaml(filename, named_by=cls._chain[-1] if cls._chain else None)
        bases = data.get(BASE_KEY)
        if isinstance(bases, str):
            bases = [bases]
        if bases is not None and not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
            raise ConfigError(f"_BASE_ in {filename!r} must be a path or a list of paths, got {bases!r}.")
        cls._chain.append(norm)
        try:
            if not bases:
                data.pop(BASE_KEY, None)
                return data
            if any("://" in b and not b.startswith(("http://", "https://")) for b in bases):
                return cls._load_with_uri_bases(filename, data, bases)
            try:
                return super().load_yaml_with_base(filename, allow_unsafe=False)
            except AssertionError as e:  # fvcore: "Cannot inherit key 'X' from base!"
                raise ConfigError(f"{filename!r}: {e} (a group of keys in a base is a single value here).") from None
        finally:
            cls._chain.pop()

    @classmethod
    def _load_with_uri_bases(cls, filename: str, data: Dict[str, Any], bases: List[str]) -> Dict[str, Any]:
        # The same merge as fvcore's, for bases fvcore would wrongly join to the file's folder.
        merged: Dict[str, Any] = {}
        for b in bases:
            if not (b.startswith("/") or "://" in b or b.startswith("~")):
                b = os.path.join(os.path.dirname(filename), b)
            merged = _deep_merge(merged, cls.load_yaml_with_base(os.path.expanduser(b)))
        data.pop(BASE_KEY, None)
        return _deep_merge(merged, data)


def load_yaml_with_base(path: str) -> Dict[str, Any]:
    """Read a YAML config and resolve its ``_BASE_`` chain (a path or a list of paths).

    Base paths are relative to the file that names them. Later files override earlier ones;
    nested mappings are merged key by key. A cycle (``_BASE_: ./self.yaml``, or a -> b -> a)
    is a :class:`ConfigError` naming the files of the cycle.
    """
    return _BaseLoader.load_yaml_with_base(path)


# ------------------------------------------------------------------------------------------------
# Key and type checks
# ------------------------------------------------------------------------------------------------
def _all_keys(cfg: CfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in cfg.items():
        full = prefix + k
        keys.append(full)
        if isinstance(v, CfgNode):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _unknown_key_error(key: str, cfg: CfgNode, source: str) -> ConfigError:
    if key in RENAMED_KEYS:
        return ConfigError(f"Config key {key!r} (from {source}) is now {RENAMED_KEYS[key]!r}: rename it.")
    keys = _all_keys(cfg)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not close:  # a misspelt leaf under the right parent: compare leaf names only
        leaf = key.split(".")[-1]
        by_leaf = {k.split(".")[-1]: k for k in keys}
        m = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[m[0]]] if m else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"Unknown config key {key!r} (from {source}).{hint} "
        "Keys of a plugin exist only once the plugin is listed in PLUGINS."
    )


def _type_name(v: Any) -> str:
    return "list" if isinstance(v, (list, tuple)) else type(v).__name__


def _coerce(key: str, new: Any, old: Any, source: str) -> Any:
    """Return ``new`` converted to the type of the default ``old`` or raise ConfigError."""
    if old is None:
        return new
    if new is None:
        # Every default is a concrete value; a YAML null or a Python None would only reach
        # the code as a crash later. (The string "none", a choice of several keys, is fine.)
        raise ConfigError(
            f"Config key {key!r} (from {source}) expects a {_type_name(old)} like {old!r}, got None; "
            "write the value itself (for keys whose choices include it, the string none)."
        )
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif isinstance(old, str):
        if isinstance(new, str):
            return new
    elif isinstance(old, (list, tuple)):
        if isinstance(new, (list, tuple)):
            return list(new) if isinstance(old, list) else tuple(new)
    else:
        return new
    hint = f" Write a list, e.g. {key} [{new}]." if isinstance(old, (list, tuple)) and isinstance(new, str) else ""
    raise ConfigError(
        f"Config key {key!r} (from {source}) expects a {_type_name(old)} like {old!r}, "
        f"got {new!r} ({_type_name(new)}).{hint}"
    )


def _check_dict(
    data: Dict[str, Any], cfg: CfgNode, source: str, root: CfgNode, prefix: str = ""
) -> Dict[str, Any]:
    """Check keys and types of a nested mapping against ``cfg``; return the coerced mapping."""
    out = {}
    for k, v in data.items():
        full = prefix + str(k)
        if k not in cfg:
            raise _unknown_key_error(full, root, source)
        old = cfg[k]
        if isinstance(old, CfgNode):
            if not isinstance(v, dict):
                raise ConfigError(
                    f"Config key {full!r} (from {source}) is a group of keys; give a mapping, got {v!r}."
                )
            out[k] = _check_dict(v, old, source, root, full + ".")
        else:
            out[k] = _coerce(full, v, old, source)
    return out


def _parse_value(text: str) -> Any:
    """Parse a command-line value like yacs does (Python literals; bare words are strings).

    ``true`` / ``false`` in any case are booleans, as in YAML. A bare ``none`` stays the
    string ``"none"``: several keys (``LINEAR.FEATURE_NORM``, ``MODEL.BACKBONE.NORM``, ...)
    take it as a choice. A bracketed list of bare words (``[x3d_plugin]``, ``[a, 2]``) is a
    list of the words parsed the same way, as in YAML (not the string ``"[x3d_plugin]"``).
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            inner = stripped[1:-1].strip()
            return [_parse_value(item.strip().strip("'\"")) for item in inner.split(",")] if inner else []
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        return text


def parse_opts(opts: Sequence[str]) -> Dict[str, Any]:
    """Turn ``["A.B", "1", "C", "x"]`` into a nested mapping ``{"A": {"B": 1}, "C": "x"}``.

    A leading ``--opts`` is ignored, so both ``KEY VALUE ...`` and ``--opts KEY VALUE ...`` work.
    """
    opts = [o for o in opts if o != "--opts"]
    if len(opts) % 2:
        raise ConfigError(
            f"Command-line overrides must be KEY VALUE pairs; got an odd number of items: {opts}"
        )
    nested: Dict[str, Any] = {}
    for key, text in zip(opts[0::2], opts[1::2]):
        node = nested
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {key!r} conflicts with an earlier override of {p!r}.")
        node[parts[-1]] = _parse_value(text)
    return nested


# ------------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------------
def misplaced_options(parser, opts: Sequence[str]) -> List[str]:
    """Options of an argparse ``parser`` found among the KEY VALUE overrides ``opts``.

    argparse takes every word after the first override as an override (``nargs=REMAINDER``), so
    ``... SOLVER.BASE_LR 0.05 --dry-run`` would silently not run dry; the tools refuse it with
    the names this returns.
    """
    known = set(parser._option_string_actions) - {"--opts"}
    return [o for o in opts if isinstance(o, str) and o.split("=", 1)[0] in known]


def merge_dict(cfg: CfgNode, data: Dict[str, Any], source: str) -> CfgNode:
    """Check ``data`` against ``cfg`` (keys and types) and merge it in place."""
    checked = _check_dict(data, cfg, source, root=cfg)
    cfg.merge_from_other_cfg(CfgNode(checked))
    return cfg


def load_config(
    path: Optional[str] = None,
    opts: Iterable[str] = (),
    cfg: Optional[CfgNode] = None,
    validate: bool = True,
    import_plugins: Optional[Callable[[List[str]], List[ModuleType]]] = None,
) -> CfgNode:
    """Build a config: defaults <- YAML (with _BASE_) <- plugins' keys <- overrides.

    The config of a run (plugins imported, ``TASK`` checked) comes from
    :func:`ascnet.engine.plugins.load_config`, which calls this with its plugin loader.

    Args:
        path: YAML file (any iopath URI), or None for the defaults.
        opts: command-line overrides, ``KEY VALUE`` pairs (a leading ``--opts`` is allowed).
        cfg: start from this config instead of :func:`get_cfg` (e.g. after a plugin's
            ``add_config``).
        validate: run :func:`validate_cfg` on the result.
        import_plugins: ``fn(module names) -> modules`` importing the plugins the config lists
            (the engine's); each returned module's ``add_config(cfg)`` is called before the
            YAML is merged. None: a config that lists plugins not imported yet is refused.

    Returns:
        The merged, validated, frozen config.

    Raises:
        ConfigError: unknown key, wrong type, bad value, unreadable file, plugin import failure.
    """
    cfg = get_cfg() if cfg is None else cfg
    cfg.defrost()
    file_data = load_yaml_with_base(path) if path else {}
    opt_data = parse_opts(list(opts))
    # Plugins come first: they may register components and add config keys. The two lists
    # are type-checked first: a bare string would be iterated letter by letter.
    plugins = list(cfg.PLUGINS)
    for data, source in ((file_data, str(path)), (opt_data, "command line")):
        if data.get("PLUGINS") is not None:
            plugins += _coerce("PLUGINS", data["PLUGINS"], [], source)
    if import_plugins is not None:
        for module in import_plugins(plugins):
            add = getattr(module, "add_config", None)
            if callable(add):
                add(cfg)
    else:
        missing = [p for p in plugins if p not in sys.modules]
        if missing:
            raise ConfigError(
                f"The config lists PLUGINS {missing}, which are not imported: load it with "
                "ascnet.engine.plugins.load_config (it imports the plugins and adds their keys)."
            )
    if file_data:
        merge_dict(cfg, file_data, source=str(path))
    if opt_data:
        merge_dict(cfg, opt_data, source="command line")
    if validate:
        validate_cfg(cfg)
    cfg.freeze()
    return cfg


def _choice(cfg: CfgNode, key: str, choices: Sequence[str]) -> None:
    node = cfg
    for p in key.split("."):
        node = node[p]
    if node not in choices:
        raise ConfigError(f"{key} is {node!r}; choose one of {list(choices)}.")


def validate_cfg(cfg: CfgNode) -> None:
    """Check values that must agree with each other; raise ConfigError naming the keys.

    The allowed values of a choice key are read from the component that uses it (e.g.
    ``ascnet.solver.build.OPTIMIZERS``); keys of models and of the evaluation are checked by
    their components when built.
    """
    # TASK is checked where tasks are looked up (ascnet.engine.tasks.check_task).
    if cfg.NUM_GPUS < 0 or cfg.NUM_CPU_PROCESSES < 1:
        raise ConfigError("NUM_GPUS must be >= 0 and NUM_CPU_PROCESSES >= 1.")
    if cfg.NUM_SHARDS < 1 or not 0 <= cfg.SHARD_ID < cfg.NUM_SHARDS:
        raise ConfigError(f"SHARD_ID ({cfg.SHARD_ID}) must be in [0, NUM_SHARDS={cfg.NUM_SHARDS}).")
    world = (cfg.NUM_GPUS or cfg.NUM_CPU_PROCESSES) * cfg.NUM_SHARDS
    # Only the batch sizes of the phases this TASK runs must split over the processes (a
    # pretraining job on 16 GPUs must not fail over the unused TEST.BATCH_SIZE).
    used = {
        "pretrain": ("TRAIN.BATCH_SIZE",),
        "finetune": ("TRAIN.BATCH_SIZE", "TEST.BATCH_SIZE"),
        "linear": ("TRAIN.BATCH_SIZE", "TEST.BATCH_SIZE"),
        "test": ("TEST.BATCH_SIZE",),
        "retrieval": ("RETRIEVAL.BATCH_SIZE",),
    }.get(cfg.TASK, ("TRAIN.BATCH_SIZE", "TEST.BATCH_SIZE", "RETRIEVAL.BATCH_SIZE"))
    for key in ("TRAIN.BATCH_SIZE", "TEST.BATCH_SIZE", "RETRIEVAL.BATCH_SIZE"):
        sec, name = key.split(".")
        bs = cfg[sec][name]
        if bs < 1:
            raise ConfigError(f"{key} must be >= 1, got {bs}.")
        if key in used and bs % world:
            raise ConfigError(
                f"{key} ({bs}) is the global batch size and must be divisible by the number of "
                f"processes ({world} = {'NUM_GPUS' if cfg.NUM_GPUS else 'NUM_CPU_PROCESSES'} x "
                f"NUM_SHARDS). Use e.g. {key} {max(world, bs // world * world)}."
            )
    if cfg.LOG_PERIOD < 1:
        raise ConfigError(f"LOG_PERIOD must be >= 1, got {cfg.LOG_PERIOD}.")
    # Training-loop counters (the engine): 0 switches a feature off, negatives are mistakes.
    for key in ("CHECKPOINT_PERIOD", "CHECKPOINT_ITERS", "CHECKPOINT_MAX_KEEP", "MAX_ITERS", "EVAL_PERIOD"):
        if cfg.TRAIN[key] < 0:
            raise ConfigError(f"TRAIN.{key} must be >= 0 (0 = off), got {cfg.TRAIN[key]}.")
    if cfg.SOLVER.CLIP_GRAD_NORM < 0 or cfg.SOLVER.WARMUP_EPOCHS < 0:
        raise ConfigError("SOLVER.CLIP_GRAD_NORM and SOLVER.WARMUP_EPOCHS must be >= 0 (0 = off).")
    if cfg.DATA.NUM_FRAMES < 1 or cfg.DATA.SAMPLING_RATE < 1:
        raise ConfigError("DATA.NUM_FRAMES and DATA.SAMPLING_RATE must be >= 1.")
    if cfg.DATA.TARGET_FPS < 0:
        raise ConfigError("DATA.TARGET_FPS must be >= 0 (0 = native frame rate).")
    if len(cfg.DATA.MEAN) != cfg.DATA.INPUT_CHANNEL_NUM or len(cfg.DATA.STD) != cfg.DATA.INPUT_CHANNEL_NUM:
        raise ConfigError("DATA.MEAN and DATA.STD need one value per input channel (DATA.INPUT_CHANNEL_NUM).")
    if not cfg.DATA.SPEEDS or any(s < 1 for s in cfg.DATA.SPEEDS):
        raise ConfigError(f"DATA.SPEEDS must be positive integers, got {cfg.DATA.SPEEDS}.")
    if cfg.TASK == "pretrain" and cfg.MODEL.META_ARCH == "ASCNet" and len(cfg.DATA.SPEEDS) < 2:
        # Checked here, before the run starts (the model checks it too, when built).
        raise ConfigError(f"ASCNet needs at least two playback speeds, got DATA.SPEEDS {list(cfg.DATA.SPEEDS)}; "
                          "use e.g. DATA.SPEEDS [1, 2].")
    if not 0.0 <= cfg.TEACHER.EMA_BASE <= 1.0:
        raise ConfigError(f"TEACHER.EMA_BASE must be in [0, 1], got {cfg.TEACHER.EMA_BASE}.")
    if cfg.MEMORY_BANK.SIZE < 1:
        raise ConfigError(f"MEMORY_BANK.SIZE must be >= 1, got {cfg.MEMORY_BANK.SIZE}.")
    # The choice lists live with the components that use them; the keys of components above
    # the config layer's imports (modeling, evaluation: MODEL.BACKBONE.NORM,
    # TEACHER.BN_MODE, LINEAR.FEATURE_NORM, RETRIEVAL.POOLING) are checked there, when the
    # component is built, so loading a config never imports a model.
    from ascnet.sampling.clip import SHORT_VIDEO_POLICIES
    from ascnet.solver.build import OPTIMIZERS
    from ascnet.solver.lr_scheduler import LR_POLICIES
    from ascnet.utils.search import BANK_SEARCH_CHOICES, SEARCH_BACKENDS

    _choice(cfg, "MEMORY_BANK.SEARCH", BANK_SEARCH_CHOICES)
    if cfg.ASCNET.BANK_MIN_FILL < 0 or cfg.MEMORY_BANK.CHUNK_SIZE < 1:
        raise ConfigError(
            "ASCNET.BANK_MIN_FILL must be >= 0 (0 = one global batch) and MEMORY_BANK.CHUNK_SIZE >= 1."
        )
    _choice(cfg, "RETRIEVAL.BACKEND", SEARCH_BACKENDS)
    # Downstream: view counts, top-k list and the linear/fine-tune recipes.
    if min(cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS, cfg.RETRIEVAL.NUM_CLIPS, cfg.RETRIEVAL.NUM_CROPS) < 1:
        raise ConfigError(
            "TEST.NUM_ENSEMBLE_VIEWS, TEST.NUM_SPATIAL_CROPS, RETRIEVAL.NUM_CLIPS and RETRIEVAL.NUM_CROPS must be >= 1."
        )
    if not cfg.RETRIEVAL.TOPK or any(int(k) < 1 for k in cfg.RETRIEVAL.TOPK):
        raise ConfigError(f"RETRIEVAL.TOPK must be a non-empty list of k >= 1, got {cfg.RETRIEVAL.TOPK}.")
    if cfg.RETRIEVAL.VIS_NUM_QUERIES < 1:
        raise ConfigError(f"RETRIEVAL.VIS_NUM_QUERIES must be >= 1, got {cfg.RETRIEVAL.VIS_NUM_QUERIES}.")
    for grp in ("LINEAR", "FINETUNE"):
        r = cfg[grp]
        if r.BASE_LR <= 0 or r.MAX_EPOCH < 1 or r.WEIGHT_DECAY < 0 or r.WARMUP_EPOCHS < 0:
            raise ConfigError(
                f"{grp}.BASE_LR must be > 0, {grp}.MAX_EPOCH >= 1, {grp}.WEIGHT_DECAY and {grp}.WARMUP_EPOCHS >= 0."
            )
    _choice(cfg, "SOLVER.OPTIMIZING_METHOD", OPTIMIZERS)
    _choice(cfg, "SOLVER.LR_POLICY", LR_POLICIES)
    _choice(cfg, "AMP.DTYPE", ("bfloat16", "float16"))
    _choice(cfg, "DIST_BACKEND", ("auto", "nccl", "gloo"))
    # SyncBatchNorm only runs on CUDA tensors; on CPU it would fail at the first forward.
    if str(cfg.MODEL.BACKBONE.NORM).lower() == "syncbatchnorm" and cfg.NUM_GPUS == 0:
        raise ConfigError(
            "MODEL.BACKBONE.NORM 'syncbatchnorm' needs GPUs (NUM_GPUS > 0); on CPU use 'batchnorm' "
            "or 'groupnorm'."
        )
    if cfg.SOLVER.BASE_LR <= 0 or cfg.SOLVER.MAX_EPOCH < 1:
        raise ConfigError("SOLVER.BASE_LR must be > 0 and SOLVER.MAX_EPOCH >= 1.")
    for p in (cfg.AUG.FLIP_PROB, cfg.AUG.COLOR_JITTER_PROB, cfg.AUG.GRAYSCALE_PROB, cfg.AUG.BLUR_PROB):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"AUG.*_PROB values must be probabilities in [0, 1], got {p}.")
    if not 0.0 <= cfg.DATA.MAX_FAILURE_RATIO <= 1.0:
        raise ConfigError("DATA.MAX_FAILURE_RATIO must be in [0, 1].")
    # Data: how short videos are handled (the generated dataset's keys: SyntheticSpec.check).
    _choice(cfg, "DATA.SHORT_VIDEO_POLICY", SHORT_VIDEO_POLICIES)
    # Augmentation ranges: the lengths the transforms unpack.
    for key, n in (("RRC_SCALE", 2), ("RRC_RATIO", 2), ("COLOR_JITTER", 4), ("BLUR_SIGMA", 2)):
        if len(cfg.AUG[key]) != n:
            raise ConfigError(f"AUG.{key} needs {n} numbers, got {list(cfg.AUG[key])}.")
    # The generated dataset's parameters (checked before minutes of generation, not after).
    if "Synthetic" in (cfg.TRAIN.DATASET, cfg.TEST.DATASET):
        from ascnet.data.synthetic import SyntheticSpec  # local: heavy imports only when used

        try:
            SyntheticSpec.from_cfg(cfg).check()
        except ValueError as e:
            raise ConfigError(str(e)) from None


def save_config(cfg: CfgNode, path: str) -> None:
    """Write the resolved config as YAML (atomically: a crash never leaves half a file)."""
    from ascnet.utils.io import atomic_write_bytes

    atomic_write_bytes(path, cfg.dump().encode("utf-8"))
