"""rho-BYOL plugin for ascnet.

Importing this package registers the model ``RhoBYOL`` in ascnet's MODEL_REGISTRY; ascnet's
config loader calls :func:`add_config` to add the ``RHOBYOL.*`` keys before merging a YAML
that lists ``rho_byol`` in ``PLUGINS``.
"""
from .model import RhoBYOL, add_config  # noqa: F401

__all__ = ["RhoBYOL", "add_config"]
