"""X3D backbone plugin for ascnet.

Importing this package registers the backbone ``X3D`` in ascnet's BACKBONE_REGISTRY; ascnet's
config loader calls :func:`add_config` to add the ``MODEL.X3D.*`` keys before merging a YAML
that lists ``x3d_plugin`` in ``PLUGINS``.
"""
from .backbone import X3D, X3DBackbone, create_x3d_backbone  # noqa: F401
from .config import add_x3d_config

# The hook ascnet's load_config looks for on every plugin module.
add_config = add_x3d_config

__all__ = ["X3D", "X3DBackbone", "create_x3d_backbone", "add_config", "add_x3d_config"]
