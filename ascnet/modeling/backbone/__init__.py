"""Video backbones. Importing this package registers the built-in ones."""
from .build import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from . import resnet  # noqa: F401,E402  (registers R3D18, R2Plus1D18)
from . import s3dg  # noqa: F401,E402  (registers S3DG)
