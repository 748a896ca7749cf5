"""Per-speed memory banks with faiss / torch top-1 search."""
from .build import MEMORY_BANK_REGISTRY, build_memory_bank  # noqa: F401
from .ring import RingMemoryBank  # noqa: F401
