"""Meta-architectures: ASCNet (pretraining) and Classifier (downstream)."""
from .build import MODEL_REGISTRY, build_model  # noqa: F401
