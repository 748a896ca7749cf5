"""Count the host-device synchronisations a piece of code would make on a GPU, on any device.

On a GPU every read of a tensor's value by the host (``.item()``, ``int(t)``, ``bool(t)``,
``.tolist()``, ``.cpu()``, ``.numpy()``) and every op whose output shape depends on tensor values
(``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``) waits for the device queue to
drain. Such stalls are invisible on the CPU, where the same code runs without waiting, so they are
counted here by what is called rather than by what it costs: a :class:`TorchDispatchMode` records
the ATen ops that synchronise, and the Python-level reads that never reach the dispatcher
(``tolist``, ``numpy``, ``cpu``, ``to("cpu")`` with the literal string) are counted by wrapping
those methods for the duration of the block.

Used by the tests that hold the training step free of synchronisations and by
``benchmarks/train_step.py``::

    with HostSyncCounter() as syncs:
        step()
    print(syncs.total, syncs.counts)
"""
from collections import Counter
from typing import Dict, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncCounter", "SYNCING_OPS"]

# ATen ops (overload packets) that read values on the host or size their output by them.
SYNCING_OPS = (
    "aten._local_scalar_dense",  # .item(), int(t), float(t), bool(t), if t: ...
    "aten.nonzero",  # torch.nonzero, torch.where(cond) with one argument
    "aten.masked_select",
    "aten.unique_dim",
    "aten._unique2",
    "aten.unique_consecutive",
    "aten.repeat_interleave",  # with tensor repeats: the output size is their sum
)

# Index ops that synchronise when one of their indices is a boolean mask (they run nonzero inside).
_MASK_INDEX_OPS = ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_")

# Python-level reads that copy to the host without dispatching a syncing op on the CPU.
_HOST_READS = ("tolist", "numpy", "cpu")


def _packet_name(func) -> str:
    packet = getattr(func, "overloadpacket", func)
    return f"aten.{getattr(packet, '__name__', str(packet))}"


def _has_mask_index(args) -> bool:
    for a in args:
        if isinstance(a, (list, tuple)):
            if any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in a):
                return True
    return False


class HostSyncCounter(TorchDispatchMode):
    """Context manager counting host synchronisations made inside its block (this thread).

    Attributes:
        counts: ``{name: n}`` where name is an ATen op (``aten._local_scalar_dense``,
            ``aten.nonzero``, ``aten.index[mask]`` ...) or a host read (``Tensor.tolist``,
            ``Tensor.numpy``, ``Tensor.cpu``, ``Tensor.to(cpu)``).
        total: the sum of ``counts``.
    """

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self._saved: Dict[str, object] = {}

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = _packet_name(func)
        if name in SYNCING_OPS:
            # repeat_interleave with an int repeat count needs no sync.
            if name != "aten.repeat_interleave" or isinstance(args[0] if args else None, torch.Tensor):
                self.counts[name] += 1
        elif name in _MASK_INDEX_OPS and _has_mask_index(args):
            self.counts[f"{name}[mask]"] += 1
        return func(*args, **(kwargs or {}))

    # -- Python-level host reads -------------------------------------------------------------------
    def _wrap(self, attr: str):
        original = getattr(torch.Tensor, attr)
        counts = self.counts

        def wrapper(t, *a, **k):
            counts[f"Tensor.{attr}"] += 1
            return original(t, *a, **k)

        return wrapper

    def __enter__(self):
        # Remember what torch.Tensor itself defines (most of these live on its C base class), so
        # that __exit__ restores the class exactly.
        self._saved = {a: torch.Tensor.__dict__.get(a) for a in _HOST_READS + ("to",)}
        for attr in _HOST_READS:
            setattr(torch.Tensor, attr, self._wrap(attr))
        original_to = torch.Tensor.to
        counts = self.counts

        def to(t, *a, **k):
            # Only a literal "cpu" names the host: ``x.to(other.device)`` is a no-op on a GPU when
            # both live there, and on the CPU it cannot be told apart from a real host copy.
            target: Optional[object] = k.get("device", a[0] if a else None)
            if isinstance(target, str) and torch.device(target).type == "cpu":
                counts["Tensor.to(cpu)"] += 1
            return original_to(t, *a, **k)

        torch.Tensor.to = to
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for attr, original in self._saved.items():
                if original is None:
                    delattr(torch.Tensor, attr)
                else:
                    setattr(torch.Tensor, attr, original)
            self._saved.clear()
