"""Small helpers shared by the data modules: seed derivation, path joining, annotation errors."""
from typing import Tuple, Union


class AnnotationError(ValueError):
    """An annotation file cannot be parsed, a dataset's samples break the data contract, or a
    split cannot serve the run (fewer videos than one batch); the message names the file (and
    line), the dataset class or the split, and the fix."""


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(*values: int) -> int:
    """A well-mixed seed in [0, 2**63) from integers (e.g. RNG_SEED, epoch, index).

    Pure integer hashing (splitmix64): identical on every machine, Python version and process,
    unlike ``hash()``; about a microsecond per call, so it can run for every sample.
    """
    h = 0x243F6A8885A308D3
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1


def parse_key(key: Union[int, Tuple[int, int]]) -> Tuple[int, Union[int, None]]:
    """Split a dataset key ``i`` or ``(i, seed)`` into ``(i, seed or None)``."""
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise KeyError(f"A dataset key is an index or an (index, seed) pair, got {key!r}.")
        return int(key[0]), int(key[1])
    return int(key), None


def join_path(prefix: str, rel: str) -> str:
    """Join a folder (local or iopath URI) and a relative path; absolute ``rel`` is kept."""
    if not prefix or rel.startswith("/") or "://" in rel:
        return rel
    return prefix.rstrip("/") + "/" + rel.lstrip("/")
