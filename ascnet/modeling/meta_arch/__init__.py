"""Meta-architectures: ASCNet (pretraining) and Classifier (downstream)."""
from .build import MODEL_REGISTRY, build_model  # noqa: F401
from . import ascnet, classifier  # noqa: F401,E402  (registers ASCNet and Classifier)
