"""Plugin discovery: modules named in ``cfg.PLUGINS`` and the ``ascnet.plugins`` entry points.

Importing a plugin module registers its components (``@BACKBONE_REGISTRY.register()`` ...).
A plugin module may also define ``add_config(cfg)`` to add its own config keys; it is called
before the YAML is merged.
"""
import importlib
import logging
import traceback
from importlib.metadata import entry_points
from types import ModuleType
from typing import Iterable, List

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ascnet.plugins"


class PluginError(ImportError):
    """A plugin module could not be imported."""


def _entry_point_modules() -> List[str]:
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    return [ep.value.split(":")[0] for ep in eps]


def import_plugins(modules: Iterable[str] = (), entry_points_too: bool = True) -> List[ModuleType]:
    """Import plugin modules (each once, in order) and return them.

    Args:
        modules: importable module names (e.g. ``["x3d_plugin"]``).
        entry_points_too: also import the modules of installed packages that declare the
            ``ascnet.plugins`` entry-point group.

    Raises:
        PluginError: naming the module that failed and why.
    """
    import ascnet.modeling  # noqa: F401  (built-in components register on import)
    import ascnet.data  # noqa: F401

    names = list(modules) + (_entry_point_modules() if entry_points_too else [])
    loaded, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        try:
            loaded.append(importlib.import_module(name))
        except Exception as e:  # any failure in the plugin's own import code
            raise PluginError(
                f"Plugin module {name!r} (from PLUGINS or the '{ENTRY_POINT_GROUP}' entry points) "
                f"failed to import: {type(e).__name__}: {e}. Check that it is installed or on "
                f"PYTHONPATH.\n{traceback.format_exc(limit=3)}"
            ) from e
    return loaded
