"""The one cache of extracted evaluation features (retrieval and the cached linear probe).

A cache file holds ``{"protocol": <JSON string>, "feats": (N, ...), "labels": (N,)}`` and is
named by the sha256 of the protocol and the split; the protocol holds the sha256 of the
checkpoint FILE CONTENT and every key that defines the features, so a changed checkpoint or
setting never reuses stale features. A missing, foreign or damaged file is recomputed (a
damaged one with a warning) and rewritten by rank 0 with an atomic write.
"""
import hashlib
import json
import logging
import os
from typing import Callable, Dict, Optional, Tuple

import torch
from iopath.common.file_io import g_pathmgr

from ascnet.utils.distributed import is_main_process

logger = logging.getLogger(__name__)


def cache_path(cache_dir: str, protocol: Dict[str, object], split: str) -> str:
    """``<cache_dir>/<split>_<24 hex of sha256(protocol, split)>.pt``."""
    blob = json.dumps({"protocol": protocol, "split": split}, sort_keys=True).encode()
    return os.path.join(cache_dir, f"{split}_{hashlib.sha256(blob).hexdigest()[:24]}.pt")


def load_or_extract_features(
    cache_dir: str,
    protocol: Dict[str, object],
    split: str,
    use_cache: bool,
    source: str,
    extract: Callable[[], Tuple[torch.Tensor, torch.Tensor]],
) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """The features of ``split`` under ``protocol``: from the cache when it holds them, else
    ``extract()`` (run in every process: extraction is sharded) and cached by rank 0.

    Args:
        cache_dir: the cache folder.
        protocol: every setting that defines the features (JSON-serialisable).
        split: the split's name (in the file name).
        use_cache: read and write the cache at all.
        source: the config key of the cache folder, for messages.
        extract: ``() -> (feats (N, ...), labels (N,))``.

    Returns:
        (N, ...) features, (N,) int64 labels, True when read from the cache.
    """
    path = cache_path(cache_dir, protocol, split)
    blob = json.dumps(protocol, sort_keys=True)
    hit = read_feature_cache(path, blob, source) if use_cache else None
    if hit is not None:
        return hit[0], hit[1], True
    feats, labels = extract()
    if use_cache and is_main_process():
        write_feature_cache(path, blob, feats, labels)
    return feats, labels, False


def read_feature_cache(path: str, protocol: str, source: str) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Features and labels cached at ``path`` under ``protocol`` (a JSON string), or None.

    None when the file is missing, was written under another protocol, or is damaged (a
    warning; the caller recomputes and rewrites it). Read through the one checkpoint reader.

    Args:
        source: the config key of the cache folder, for the warning.
    """
    from ascnet.utils.checkpoint import CheckpointError, read_checkpoint

    if not g_pathmgr.exists(path):
        return None
    try:
        blob = read_checkpoint(path, source=source)
    except CheckpointError as e:  # a damaged cache is recomputed (and rewritten)
        logger.warning("Ignoring the feature cache: %s", e)
        return None
    return (blob["feats"], blob["labels"]) if blob.get("protocol") == protocol else None


def write_feature_cache(path: str, protocol: str, feats: torch.Tensor, labels: torch.Tensor) -> None:
    """Cache ``feats`` and ``labels`` at ``path`` under ``protocol`` (atomic write)."""
    from ascnet.utils.io import atomic_write

    blob = {"protocol": protocol, "feats": feats, "labels": labels}
    atomic_write(path, lambda f: torch.save(blob, f))
