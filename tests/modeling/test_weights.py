"""Backbone weights: extraction from every checkpoint layout, exact round trips, clear refusals."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling import build_backbone
from ascnet.modeling.weights import (
    WeightsError,
    extract_backbone_state_dict,
    load_backbone_weights,
    save_backbone_weights,
)
from ascnet.utils.checkpoint import CheckpointError


def _tiny_backbone(seed):
    torch.manual_seed(seed)
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 16]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    m = build_backbone(cfg)
    # Non-trivial BN statistics so buffers matter for the eval-mode comparison.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm3d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
    return m.eval()


class _Branch(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Linear(16, 8)


class _ASCNetLike(nn.Module):
    """Stand-in with the ASCNet key layout: online.* and target.* (target = a different copy)."""

    def __init__(self):
        super().__init__()
        self.online = _Branch(_tiny_backbone(1))
        self.target = _Branch(_tiny_backbone(2))


class _ClassifierLike(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(16, 5)


@pytest.fixture
def clip():
    torch.manual_seed(0)
    return torch.randn(2, 3, 8, 64, 64)


def test_pretrain_checkpoint_gives_online_backbone(tmp_path, clip):
    model = _ASCNetLike()
    path = str(tmp_path / "ckpt.pyth")
    torch.save({"model": model.state_dict(), "iteration": 3, "optimizer": {}}, path)
    fresh = _tiny_backbone(7)
    report = load_backbone_weights(fresh, path)
    assert not report.missing and not report.unexpected
    assert len(report.loaded) == len(fresh.state_dict())
    with torch.no_grad():
        out, ref, tgt = fresh(clip), model.online.backbone(clip), model.target.backbone(clip)
    assert torch.equal(out, ref)
    assert not torch.allclose(out, tgt)


def test_export_then_load_into_backbone_and_classifier(tmp_path, clip):
    model = _ASCNetLike()
    ckpt = str(tmp_path / "ckpt.pyth")
    torch.save({"model": model.state_dict()}, ckpt)
    out = str(tmp_path / "exported" / "backbone.pyth")
    save_backbone_weights(extract_backbone_state_dict(ckpt), out)
    with torch.no_grad():
        ref = model.online.backbone(clip)

    bare = _tiny_backbone(9)
    load_backbone_weights(bare, out)
    with torch.no_grad():
        assert torch.equal(bare(clip), ref)

    clf = _ClassifierLike(_tiny_backbone(10)).eval()
    clf.load_state_dict({f"backbone.{k}": v for k, v in torch.load(out, weights_only=True)["model"].items()},
                        strict=False)
    with torch.no_grad():
        assert torch.equal(clf.backbone(clip), ref)
    # A Classifier checkpoint (backbone.*) under DDP (module.*) round-trips too.
    ddp_state = {f"module.{k}": v for k, v in clf.state_dict().items()}
    again = _tiny_backbone(11)
    report = load_backbone_weights(again, {"model": ddp_state, "epoch": 1})
    assert not report.missing and not report.unexpected
    with torch.no_grad():
        assert torch.equal(again(clip), ref)


def test_ddp_wrapped_online_branch():
    model = _ASCNetLike()
    state = {k.replace("online.", "online.module.", 1): v for k, v in model.state_dict().items()}
    sd = extract_backbone_state_dict(state)
    assert set(sd) == set(model.online.backbone.state_dict())
    assert all(torch.equal(sd[k], v) for k, v in model.online.backbone.state_dict().items())


def test_refuses_empty_and_mismatched_loads(tmp_path):
    backbone = _tiny_backbone(0)
    with pytest.raises(WeightsError, match="nothing would be loaded"):
        load_backbone_weights(backbone, {"backbone.not_a_layer.weight": torch.zeros(3)})
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 32]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    other = build_backbone(cfg)
    with pytest.raises(WeightsError, match="other shapes"):
        load_backbone_weights(backbone, {"model": other.state_dict()})
    with pytest.raises(CheckpointError, match="missing.pyth.*does not exist"):
        load_backbone_weights(backbone, str(tmp_path / "missing.pyth"))
    with pytest.raises(WeightsError, match="starts with"):
        extract_backbone_state_dict({"backbone.x": torch.zeros(1)}, prefix="online.backbone.")


def test_partial_load_reports_missing_and_strict_refuses():
    backbone = _tiny_backbone(0)
    state = dict(_tiny_backbone(1).state_dict())
    dropped = next(iter(state))
    del state[dropped]
    state["extra.weight"] = torch.zeros(1)
    report = load_backbone_weights(backbone, state)
    assert report.missing == [dropped] and report.unexpected == ["extra.weight"]
    with pytest.raises(WeightsError, match="missing"):
        load_backbone_weights(backbone, state, strict=True)


def test_export_tool(tmp_path, repo_root):
    model = _ASCNetLike()
    ckpt, out = str(tmp_path / "c.pyth"), str(tmp_path / "b.pyth")
    torch.save({"model": model.state_dict()}, ckpt)
    proc = subprocess.run(
        [sys.executable, os.path.join(repo_root, "tools", "export_backbone.py"), "--checkpoint", ckpt, "--out", out],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    sd = torch.load(out, weights_only=True)["model"]
    ref = model.online.backbone.state_dict()
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)


def test_export_tool_accepts_a_run_folder(tmp_path, repo_root):
    # Like TRAIN.CHECKPOINT_FILE_PATH and eval_retrieval --checkpoint, a run's OUTPUT_DIR names
    # its newest checkpoint (the tool refused a folder).
    import importlib.util

    from ascnet.utils.checkpoint import Checkpointer

    model = _ASCNetLike()
    Checkpointer(str(tmp_path / "run"), model).save("checkpoint_iter_0000003")
    spec = importlib.util.spec_from_file_location("_export_tool", os.path.join(repo_root, "tools", "export_backbone.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / "b.pyth")
    assert tool.main(["--checkpoint", str(tmp_path / "run"), "--out", out]) == 0
    sd = torch.load(out, weights_only=True)["model"]
    ref = model.online.backbone.state_dict()
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    assert tool.main(["--checkpoint", str(tmp_path / "nothing"), "--out", out]) == 2
