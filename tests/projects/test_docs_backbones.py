"""The backbone docs stay true: docs/plugins.md's example plugin works as written, and the
parameter counts in docs/model_zoo.md are those of the built backbones."""
import os
import re

import torch

from ascnet.config import get_cfg
from ascnet.engine.plugins import load_config
from ascnet.modeling import build_backbone


def _read(repo_root, *parts):
    with open(os.path.join(repo_root, *parts), encoding="utf-8") as f:
        return f.read()


def test_plugins_doc_example_runs(repo_root, tmp_path, monkeypatch):
    text = _read(repo_root, "docs", "plugins.md")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    yaml_text = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    strip = lambda block: "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())
    pkg = tmp_path / "my_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(strip(code) + "\n")
    (tmp_path / "my.yaml").write_text(strip(yaml_text) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(str(tmp_path / "my.yaml"))
    backbone = build_backbone(cfg)
    assert backbone.out_dim == cfg.MODEL.TINY.WIDTH == 128
    assert backbone(torch.randn(2, 3, 8, 32, 32)).shape == (2, 128)


def test_model_zoo_parameter_counts(repo_root):
    text = _read(repo_root, "docs", "model_zoo.md")
    for name in ("R3D18", "R2Plus1D18", "S3DG"):
        row = re.search(rf"^\| `{name}` \|[^|]*\| ([\d,]+) ", text, re.M)
        assert row, f"no row for {name} in docs/model_zoo.md"
        cfg = get_cfg()
        cfg.MODEL.BACKBONE.NAME = name
        n = sum(p.numel() for p in build_backbone(cfg).parameters())
        assert int(row.group(1).replace(",", "")) == n, name
