"""fvcore's Registry with an error message a user can act on.

fvcore's ``Registry.get`` raises ``KeyError("No object named 'X' found in 'Y' registry!")``;
ours also lists the registered names, suggests the closest one and reminds the user that a
plugin's components exist only once its module is listed in ``PLUGINS``. fvcore's
``register`` fails on a taken name with a bare ``AssertionError``; ours names the module that
registered the name first.
"""
import difflib
from typing import Any

from fvcore.common.registry import Registry as _FvRegistry


class RegistryError(KeyError):
    """An unknown component name was asked of a registry."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly instead
        return str(self.args[0]) if self.args else ""


class Registry(_FvRegistry):
    """A name -> object table (see fvcore.common.registry.Registry).

    Register with ``@REGISTRY.register()`` (the class or function name is the key) or
    ``REGISTRY.register(obj)``; look up with ``REGISTRY.get(name)``.
    """

    def _do_register(self, name: str, obj: Any) -> None:
        first = self._obj_map.get(name)
        if first is not None:
            raise RegistryError(
                f"{self._name} name {name!r} is already registered by module "
                f"{getattr(first, '__module__', '?')!r}; module {getattr(obj, '__module__', '?')!r} "
                "registers it again. Rename one of them (registry names are the class or function names)."
            )
        self._obj_map[name] = obj

    def get(self, name: str) -> Any:
        ret = self._obj_map.get(name)
        if ret is None:
            names = sorted(self._obj_map)
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RegistryError(
                f"No {self._name} named {name!r}.{hint} Registered {self._name} names: {names}. "
                "If it comes from a plugin, add the plugin's module to PLUGINS in the config "
                "(or install a package that declares it in the 'ascnet.plugins' entry points)."
            )
        return ret

    def names(self) -> list:
        """Sorted registered names."""
        return sorted(self._obj_map)
