"""Models. Importing this package registers every built-in component."""
import warnings

# fvcore.nn (imported by pytorchvideo's model builders) compiles its focal loss with
# torch.jit.script at import time, which recent torch reports with a FutureWarning on every run;
# nothing here uses it and nothing a user can do about it, so import it once with that warning
# silenced (only here, the global warning filters are left alone).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
    import fvcore.nn  # noqa: F401

from .backbone import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from .heads import HEAD_REGISTRY, build_head  # noqa: F401
from .losses import LOSS_REGISTRY, build_loss  # noqa: F401
from .memory_bank import MEMORY_BANK_REGISTRY, build_memory_bank  # noqa: F401
from .meta_arch import MODEL_REGISTRY, build_model  # noqa: F401
from ascnet.sampling import CLIP_SAMPLER_REGISTRY, POSITIVE_SAMPLER_REGISTRY  # noqa: F401
