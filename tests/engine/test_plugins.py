import sys
import textwrap

import pytest

from ascnet.config import ConfigError
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


def test_plugins_on_the_command_line(tmp_path, monkeypatch):
    (tmp_path / "cli_plugin_mod.py").write_text("def add_config(cfg):\n    cfg.CLI_PLUGIN_KEY = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cfg = load_config(None, ["PLUGINS", "[cli_plugin_mod]", "CLI_PLUGIN_KEY", "4"])
        assert cfg.PLUGINS == ["cli_plugin_mod"] and cfg.CLI_PLUGIN_KEY == 4
        with pytest.raises(ConfigError, match=r"expects a list.*PLUGINS \[cli_plugin_mod\]"):
            load_config(None, ["PLUGINS", "cli_plugin_mod"])
    finally:
        sys.modules.pop("cli_plugin_mod", None)


def test_plugin_registering_a_taken_name_names_the_first_module(tmp_path, monkeypatch):
    (tmp_path / "clash_plugin_mod.py").write_text(textwrap.dedent('''
        from ascnet.modeling.backbone import BACKBONE_REGISTRY

        @BACKBONE_REGISTRY.register()
        def R3D18(cfg):
            raise AssertionError("never built")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = BACKBONE_REGISTRY.get("R3D18")
    try:
        with pytest.raises(PluginError) as e:
            import_plugins(["clash_plugin_mod"])
        msg = str(e.value)
        assert "'R3D18'" in msg and "ascnet.modeling.backbone.resnet" in msg and "clash_plugin_mod" in msg
        assert "PYTHONPATH" not in msg  # the module was found; its registration failed
        assert BACKBONE_REGISTRY.get("R3D18") is before  # the built-in stays
        with pytest.raises(ConfigError, match="already registered by module 'ascnet.modeling.backbone.resnet'"):
            load_config(None, ["PLUGINS", "['clash_plugin_mod']"])
    finally:
        sys.modules.pop("clash_plugin_mod", None)
