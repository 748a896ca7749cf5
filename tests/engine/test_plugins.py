import sys
import textwrap

import pytest

from ascnet.engine.plugins import load_config
from ascnet.modeling.backbone import BACKBONE_REGISTRY, build_backbone
from ascnet.engine.plugins import PluginError, import_plugins
from ascnet.utils.registry import Registry, RegistryError


def test_unknown_name_lists_registered_and_mentions_plugins():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    @reg.register()
    class Beta:
        pass

    assert reg.get("Alpha") is Alpha
    with pytest.raises(RegistryError) as e:
        reg.get("Alpah")
    msg = str(e.value)
    assert "'Alpha'" in msg and "['Alpha', 'Beta']" in msg and "PLUGINS" in msg


def test_plugin_registers_backbone_selected_by_config(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_mod.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from ascnet.modeling.backbone import BACKBONE_REGISTRY

        def add_config(cfg):
            cfg.MY_PLUGIN_WIDTH = 7

        @BACKBONE_REGISTRY.register()
        class TinyPluginBackbone(nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.out_dim = cfg.MY_PLUGIN_WIDTH
                self.proj = nn.Linear(3, self.out_dim)

            def forward(self, x):
                return self.proj(x.mean(dim=(2, 3, 4)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text("PLUGINS: [my_plugin_mod]\nMY_PLUGIN_WIDTH: 5\nMODEL:\n  BACKBONE:\n    NAME: TinyPluginBackbone\n")
    try:
        cfg = load_config(str(cfgfile))
        net = build_backbone(cfg)
        import torch

        assert net(torch.zeros(2, 3, 4, 8, 8)).shape == (2, 5)
    finally:
        BACKBONE_REGISTRY._obj_map.pop("TinyPluginBackbone", None)
        sys.modules.pop("my_plugin_mod", None)


def test_broken_plugin_names_module(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="broken_plugin_mod.*boom"):
        import_plugins(["broken_plugin_mod"])
    with pytest.raises(PluginError, match="no_such_plugin_xyz"):
        import_plugins(["no_such_plugin_xyz"])
