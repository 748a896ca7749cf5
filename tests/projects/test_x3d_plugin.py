"""The X3D plugin project: selected by PLUGINS + MODEL.BACKBONE.NAME only, adds MODEL.X3D keys,
wraps pytorchvideo's X3D exactly, and trains through tools/run_net.py without ascnet changes."""
import json
import os
import subprocess
import sys

import pytest
import torch

from ascnet.config import ConfigError
from ascnet.engine.plugins import load_config

CFG = os.path.join("projects", "X3D", "configs", "ASCNet_X3D_XS_quickstart.yaml")


@pytest.fixture
def plugin_path(repo_root, monkeypatch):
    path = os.path.join(repo_root, "projects", "X3D")
    monkeypatch.syspath_prepend(path)
    return path


def test_yaml_selects_plugin_backbone(repo_root, plugin_path):
    cfg = load_config(os.path.join(repo_root, CFG), ["MODEL.X3D.DEPTH_FACTOR", "1.0"])
    assert cfg.MODEL.BACKBONE.NAME == "X3D" and cfg.MODEL.X3D.DEPTH_FACTOR == 1.0
    from ascnet.modeling import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone(cfg)
    assert backbone.out_dim == 432
    y = backbone(torch.randn(2, 3, 8, 64, 64))
    assert y.shape == (2, 432) and torch.isfinite(y).all()


def test_plugin_keys_do_not_exist_without_the_plugin(repo_root, tmp_path):
    bad = tmp_path / "no_plugin.yaml"
    bad.write_text("MODEL:\n  BACKBONE:\n    NAME: X3D\n  X3D:\n    WIDTH_FACTOR: 2.0\n")
    with pytest.raises(ConfigError, match="MODEL.X3D"):
        load_config(str(bad))


def test_matches_pytorchvideo_x3d_without_head(plugin_path):
    from pytorchvideo.models.x3d import create_x3d
    from x3d_plugin import create_x3d_backbone

    kw = dict(width_factor=2.0, depth_factor=1.0)
    torch.manual_seed(0)
    ours = create_x3d_backbone(num_frames=4, crop_size=64, **kw).eval()
    torch.manual_seed(0)
    ref = create_x3d(input_clip_length=4, input_crop_size=64, model_num_class=1, **kw).eval()
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        h = x
        for block in ref.blocks[:-1]:
            h = block(h)
        pool = ref.blocks[-1].pool
        h = pool.pre_act(pool.pre_norm(pool.pre_conv(h))).mean(dim=(2, 3, 4))
        torch.testing.assert_close(ours(x), h)
    n_ref = sum(p.numel() for b in ref.blocks[:-1] for p in b.parameters())
    n_ref += sum(p.numel() for m in (pool.pre_conv, pool.pre_norm) for p in m.parameters())
    assert sum(p.numel() for p in ours.parameters()) == n_ref
    no_conv5 = create_x3d_backbone(num_frames=4, crop_size=64, conv5=False, **kw)
    assert no_conv5.out_dim == 192


def _run_net_ready(repo_root):
    import importlib.util

    return os.path.exists(os.path.join(repo_root, "tools", "run_net.py")) and all(
        importlib.util.find_spec(m) is not None
        for m in ("ascnet.engine.trainer", "ascnet.engine.pretrain", "ascnet.modeling.meta_arch.ascnet")
    )


def test_plugin_backbone_pretrains_through_run_net(repo_root, tmp_path, plugin_path):
    if not _run_net_ready(repo_root):
        pytest.skip("tools/run_net.py, the trainer or the ASCNet model is not available")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [plugin_path, repo_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    out, data = tmp_path / "out", tmp_path / "data"
    # The project's config as it is, shrunk for CPU time only (smaller X3D, clips and dataset).
    cmd = [
        sys.executable, os.path.join(repo_root, "tools", "run_net.py"), "--cfg", os.path.join(repo_root, CFG),
        "TRAIN.MAX_ITERS", "3", "OUTPUT_DIR", str(out), "DATA.PATH_TO_DATA_DIR", str(data),
        "TRAIN.BATCH_SIZE", "2", "LOG_PERIOD", "1",
        "MODEL.X3D.WIDTH_FACTOR", "1.0", "MODEL.X3D.DEPTH_FACTOR", "1.0",
        "DATA.NUM_FRAMES", "4", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "3", "DATA.SYNTHETIC.NUM_FRAMES", "16",
        "DATA.SYNTHETIC.SIZE", "32",
    ]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpts = sorted(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".pyth"))
    assert ckpts, f"no checkpoint under {out}"
    with open(out / "metrics.json") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    assert [r["iteration"] for r in rows if "loss" in r] == [1, 2, 3]
    losses = [r[k] for r in rows for k in ("loss", "loss_acp", "loss_scp") if k in r]
    assert len(losses) >= 9 and all(torch.isfinite(torch.tensor(v)) for v in losses)

    # The trained encoder is the plugin backbone: its weights load into a fresh X3D exactly.
    from ascnet.modeling import build_backbone
    from ascnet.modeling.weights import load_backbone_weights

    cfg = load_config(str(out / "config.yaml"))
    report = load_backbone_weights(build_backbone(cfg), ckpts[-1])
    assert report.loaded and not report.missing and not report.unexpected
