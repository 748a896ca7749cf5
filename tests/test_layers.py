"""Imports only run down the layers (docs/architecture.md).

utils / solver -> sampling -> data / modeling -> config -> evaluation -> engine -> tools, benchmarks.

Every module of the package is parsed (not imported) and every ``import`` statement is read,
including those inside functions and ``if`` blocks, so a lazy import that runs upwards is found
as well as a top-level one.
"""
import ast
import os
from typing import Iterator, List, Optional, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ascnet")

# Layer of each subpackage: a module may import its own subpackage and any lower layer.
# data and modeling share a layer and import neither each other.
LAYERS = {
    "utils": 0,
    "solver": 1,
    "sampling": 2,
    "data": 3,
    "modeling": 3,
    "config": 4,
    "evaluation": 5,
    "engine": 6,
}


def _modules() -> Iterator[Tuple[str, str]]:
    for dirpath, _, files in os.walk(PACKAGE):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), path


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> Optional[str]:
    if node.level == 0:
        return node.module
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: str) -> List[Tuple[int, str]]:
    """(line, imported ascnet module) of every import statement in the file, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target is None:
                continue
            out.append((node.lineno, target))
            # ``from ascnet import engine`` imports the subpackage by name.
            if target == "ascnet":
                out += [(node.lineno, f"ascnet.{a.name}") for a in node.names]
    return [(line, name) for line, name in out if name == "ascnet" or name.startswith("ascnet.")]


def _layer(module: str) -> Optional[str]:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports() -> List[str]:
    bad = []
    for module, path in _modules():
        src = _layer(module)
        if src is None:
            continue
        for line, target in imports_of(module, path):
            dst = _layer(target)
            if dst is None or dst == src:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: {module} ({src}) imports {target} ({dst})")
    return bad


def test_no_module_imports_a_higher_layer():
    bad = upward_imports()
    assert not bad, "Imports that run up (or sideways) the layers:\n" + "\n".join(bad)


def test_every_subpackage_has_a_layer():
    subpackages = {
        d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py"))
    }
    assert subpackages == set(LAYERS), "a new subpackage needs a layer here and in docs/architecture.md"


def test_the_walker_sees_imports_inside_functions(tmp_path):
    # The checker itself can fail: a lazy upward import in a function body is reported.
    f = tmp_path / "mod.py"
    f.write_text("def f():\n    if True:\n        from ascnet.engine.launch import launch\n    from ..engine import tasks\n")
    found = imports_of("ascnet.utils.mod", str(f))
    assert (3, "ascnet.engine.launch") in found and (4, "ascnet.engine") in found


@pytest.mark.parametrize("module", ["ascnet.config", "ascnet.config.config"])
def test_a_config_load_imports_no_model(module):
    # A --dry-run config load must not import torch models (plugin loading lives in the engine).
    import subprocess
    import sys

    code = (
        f"import sys, {module}\n"
        "from ascnet.config import load_config\n"
        "load_config(None, ['TASK', 'pretrain'])\n"
        "bad = [m for m in sys.modules if m.startswith(('ascnet.modeling', 'ascnet.engine'))]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
