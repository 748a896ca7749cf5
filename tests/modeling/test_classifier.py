"""Classifier: outputs, view averaging, frozen backbone (linear protocol), pretrained loading."""
import pytest
import torch

from ascnet.config import get_cfg
from ascnet.modeling.meta_arch import build_model
from ascnet.modeling.meta_arch import classifier as _classifier  # noqa: F401  (registers Classifier)


def tiny_cfg(task="finetune", num_classes=5):
    cfg = get_cfg()
    cfg.TASK = task
    cfg.MODEL.META_ARCH = "Classifier"
    cfg.MODEL.NUM_CLASSES = num_classes
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 16]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    return cfg


def _linear_model(cfg):
    # The linear task passes its decision in (ascnet.engine.downstream.DownstreamTrainer).
    return _classifier.Classifier(cfg, freeze_backbone=True)


def _batch(n=3, v=None, seed=0, num_classes=5):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 3, 8, 32, 32) if v is None else (n, v, 3, 8, 32, 32)
    return {"clips": torch.randn(shape, generator=g), "label": torch.arange(n) % num_classes}


def test_train_and_eval_outputs():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    assert model.head.out_dim == 5 and model.head.in_dim == model.backbone.out_dim == 16
    model.train()
    out = model(_batch())
    assert set(out) == {"loss_cls", "acc"} and out["loss_cls"].ndim == 0 and out["loss_cls"].requires_grad
    model.eval()
    b = _batch(n=2, v=4)
    with torch.no_grad():
        out = model(b)
        assert out["probs"].shape == (2, 5)
        assert torch.allclose(out["probs"].sum(1), torch.ones(2), atol=1e-5)
        # Reference: the softmax of each view separately, averaged per video.
        per_view = [model({"clips": b["clips"][:, j], "label": b["label"]})["probs"] for j in range(4)]
    assert torch.allclose(out["probs"], torch.stack(per_view).mean(0), atol=1e-6)


def test_linear_protocol_keeps_backbone_and_bn_stats_unchanged():
    torch.manual_seed(0)
    model = _linear_model(tiny_cfg(task="linear"))
    assert model.freeze_backbone
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 2 and all(any(p is q for q in model.head.parameters()) for p in trainable)
    opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
    model.train()
    assert not model.backbone.training and model.head.training
    for step in range(3):
        loss = model(_batch(seed=step))["loss_cls"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.backbone.state_dict()
    assert any("running_mean" in k for k in after)
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"backbone tensor {k} changed"  # weights and BN stats
    assert any(not torch.equal(v, model.head.state_dict()[k]) for k, v in head_before.items())


def test_finetune_trains_backbone():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(task="finetune"))
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    w0 = model.backbone.state_dict()
    w0 = {k: v.clone() for k, v in w0.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(_batch())["loss_cls"]
    loss.backward()
    opt.step()
    assert any(not torch.equal(v, model.backbone.state_dict()[k]) for k, v in w0.items())


def test_load_pretraining_checkpoint_reports_no_missing_backbone_keys(tmp_path):
    from ascnet.modeling import build_backbone
    from ascnet.modeling.heads import build_projection

    cfg = tiny_cfg()
    torch.manual_seed(1)
    # A pretraining-style checkpoint: online/target backbones and projections (to be dropped).
    online = build_backbone(cfg)
    proj = build_projection(cfg, online.out_dim)
    state = {f"online.backbone.{k}": v for k, v in online.state_dict().items()}
    state.update({f"online.proj_a.{k}": v for k, v in proj.state_dict().items()})
    state.update({f"target.backbone.{k}": torch.zeros_like(v) for k, v in online.state_dict().items()})
    path = tmp_path / "pretrain.pyth"
    torch.save({"model": state, "epoch": 3}, path)

    torch.manual_seed(2)
    model = build_model(cfg)
    report = model.load_pretrained(str(path))
    assert report.missing == []
    assert len(report.loaded) == len(online.state_dict())
    for k, v in online.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v)  # the ONLINE encoder, not the target


def test_bad_labels_and_shapes_raise_clear_errors():
    model = build_model(tiny_cfg(num_classes=2)).train()
    with pytest.raises(ValueError, match="MODEL.NUM_CLASSES"):
        model({"clips": torch.randn(2, 3, 8, 32, 32), "label": torch.tensor([0, 4])})
    with pytest.raises(ValueError, match="N, C, T, H, W"):
        model({"clips": torch.randn(3, 8, 32, 32), "label": torch.tensor([0])})


def test_linear_feature_norm_is_parameter_free_and_optional():
    torch.manual_seed(0)
    model = _linear_model(tiny_cfg(task="linear"))
    assert isinstance(model.feat_norm, torch.nn.BatchNorm1d) and not model.feat_norm.affine
    model.train()
    model(_batch(n=4))
    assert model.feat_norm.num_batches_tracked.item() == 1  # statistics of the training features
    model.eval()
    with torch.no_grad():
        b = _batch(n=2)
        f = model.backbone(b["clips"])
        ref = model.head((f - model.feat_norm.running_mean) / torch.sqrt(model.feat_norm.running_var + model.feat_norm.eps))
        assert torch.allclose(model(b)["logits"], ref, atol=1e-5)  # a fixed affine map: still linear
    cfg = tiny_cfg(task="linear")
    cfg.LINEAR.FEATURE_NORM = "none"
    assert isinstance(_linear_model(cfg).feat_norm, torch.nn.Identity)
    assert isinstance(build_model(tiny_cfg(task="finetune")).feat_norm, torch.nn.Identity)


def test_real_ascnet_checkpoint_loads_every_backbone_key(tmp_path):
    from ascnet.modeling.meta_arch import ascnet as _ascnet  # noqa: F401  (registers ASCNet)
    from ascnet.utils.checkpoint import Checkpointer

    cfg = tiny_cfg(task="pretrain")
    cfg.MODEL.META_ARCH = "ASCNet"
    cfg.MODEL.PROJECTION.HIDDEN_DIM, cfg.MODEL.PROJECTION.OUT_DIM = 16, 8
    cfg.MODEL.PREDICTOR.HIDDEN_DIM = 16
    cfg.MEMORY_BANK.SIZE = 8
    torch.manual_seed(3)
    pre = build_model(cfg)
    path = Checkpointer(str(tmp_path), pre).save("checkpoint_final")
    clf = _linear_model(tiny_cfg(task="linear"))
    report = clf.load_pretrained(path)
    assert report.missing == [] and report.loaded
    online = {k[len("online.backbone."):]: v for k, v in pre.state_dict().items() if k.startswith("online.backbone.")}
    assert online and all(torch.equal(clf.backbone.state_dict()[k], v) for k, v in online.items())
