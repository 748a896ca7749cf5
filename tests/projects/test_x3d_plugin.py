"""The X3D plugin project: selected by PLUGINS + MODEL.BACKBONE.NAME only, adds MODEL.X3D keys,
wraps pytorchvideo's X3D exactly, and trains through tools/run_net.py without ascnet changes."""
import json
import os
import subprocess
import sys

import pytest
import torch

from ascnet.config import ConfigError, load_config

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
    if not os.path.exists(os.path.join(repo_root, "tools", "run_net.py")):
        return False
    try:
        from ascnet.modeling.meta_arch.build import MODEL_REGISTRY
        import ascnet.modeling  # noqa: F401
        from ascnet.data.build import DATASET_REGISTRY

        MODEL_REGISTRY.get("ASCNet")
        DATASET_REGISTRY.get("Synthetic")
    except Exception:
        return False
    return True


def test_plugin_backbone_pretrains_through_run_net(repo_root, tmp_path):
    if not _run_net_ready(repo_root):
        pytest.skip("tools/run_net.py, the ASCNet model or the Synthetic dataset is not available")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(repo_root, "projects", "X3D"), repo_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    out, data = tmp_path / "out", tmp_path / "data"
    cmd = [
        sys.executable, os.path.join(repo_root, "tools", "run_net.py"), "--cfg", os.path.join(repo_root, CFG),
        "TRAIN.MAX_ITERS", "3", "OUTPUT_DIR", str(out), "DATA.PATH_TO_DATA_DIR", str(data),
        "TRAIN.BATCH_SIZE", "4", "LOG_PERIOD", "1", "MODEL.X3D.DEPTH_FACTOR", "1.0",
        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "2", "DATA.SYNTHETIC.NUM_FRAMES", "24",
    ]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpts = [f for _, _, fs in os.walk(out) for f in fs if f.endswith((".pyth", ".pth", ".pt"))]
    assert ckpts, f"no checkpoint under {out}"
    metrics = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f == "metrics.json"]
    assert metrics, f"no metrics.json under {out}"
    rows = []
    with open(metrics[0]) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    losses = [v for r in rows for k, v in r.items() if k.startswith("loss") and isinstance(v, (int, float))]
    assert losses and all(v == v and abs(v) < float("inf") for v in losses)
