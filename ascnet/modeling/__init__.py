"""Models. Importing this package registers every built-in component."""
from .backbone import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from .heads import HEAD_REGISTRY, build_head  # noqa: F401
from .losses import LOSS_REGISTRY, build_loss  # noqa: F401
from .memory_bank import MEMORY_BANK_REGISTRY, build_memory_bank  # noqa: F401
from .meta_arch import MODEL_REGISTRY, build_model  # noqa: F401
from ascnet.sampling import SAMPLER_REGISTRY  # noqa: F401
