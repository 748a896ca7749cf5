"""Plugin discovery and the config load of a run.

Plugins are the modules named in ``cfg.PLUGINS`` and those of the ``ascnet.plugins`` entry
points. Importing a plugin module registers its components (``@BACKBONE_REGISTRY.register()``
...). A plugin module may also define ``add_config(cfg)`` to add its own config keys; it is
called before the YAML is merged.

Plugin loading is orchestration, so it lives in the engine: :func:`load_config` here is the
config load of a run (tools, launched processes): it imports the plugins, lets them add their
keys, loads the config with :func:`ascnet.config.load_config` and checks ``TASK`` against the
engine's task table. The config layer itself never imports a component.
"""
import importlib
import logging
import traceback
from importlib.metadata import entry_points
from types import ModuleType
from typing import Iterable, List, Optional

from fvcore.common.config import CfgNode

from ascnet.config import ConfigError
from ascnet.config import load_config as _load_config
from ascnet.utils.registry import RegistryError

logger = logging.getLogger(__name__)

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "import_plugins", "load_config"]

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

    The built-in components are registered first (when there is any plugin), so a plugin that
    reuses a built-in name fails at its own registration, naming both modules.

    Args:
        modules: importable module names (e.g. ``["x3d_plugin"]``).
        entry_points_too: also import the modules of installed packages that declare the
            ``ascnet.plugins`` entry-point group.

    Raises:
        PluginError: naming the module that failed and why.
    """
    if isinstance(modules, str):  # "x3d_plugin" would otherwise be imported letter by letter
        modules = [modules]
    names = list(modules) + (_entry_point_modules() if entry_points_too else [])
    if not names:
        return []
    import ascnet.data  # noqa: F401  (built-in components register on import)
    import ascnet.modeling  # noqa: F401

    loaded, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        try:
            loaded.append(importlib.import_module(name))
        except RegistryError as e:  # a name taken by another module: the message names both
            raise PluginError(f"Plugin module {name!r} failed to import: {e}") from e
        except Exception as e:  # any failure in the plugin's own import code
            hint = " Check that it is installed or on PYTHONPATH." if isinstance(e, ImportError) else ""
            raise PluginError(
                f"Plugin module {name!r} (from PLUGINS or the '{ENTRY_POINT_GROUP}' entry points) "
                f"failed to import: {type(e).__name__}: {e}.{hint}\n{traceback.format_exc(limit=3)}"
            ) from e
    return loaded


def load_config(
    path: Optional[str] = None,
    opts: Iterable[str] = (),
    cfg: Optional[CfgNode] = None,
    validate: bool = True,
) -> CfgNode:
    """The config of a run: :func:`ascnet.config.load_config` with plugins, and ``TASK`` checked.

    Args:
        path: YAML file (any iopath URI), or None for the defaults.
        opts: command-line overrides, ``KEY VALUE`` pairs (a leading ``--opts`` is allowed).
        cfg: start from this config instead of the defaults.
        validate: run the config checks and the ``TASK`` check.

    Returns:
        The merged, validated, frozen config.

    Raises:
        ConfigError: unknown key, wrong type, bad value, unreadable file, plugin import
            failure, unknown ``TASK``.
    """

    def _import(names: List[str]) -> List[ModuleType]:
        try:
            return import_plugins(names)
        except PluginError as e:
            raise ConfigError(str(e)) from e

    out = _load_config(path, opts, cfg=cfg, validate=validate, import_plugins=_import)
    if validate:
        from .tasks import check_task

        check_task(out.TASK)
    return out
