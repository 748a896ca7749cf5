"""The training step's statistics and host synchronisations, and the MODEL.COMPILE /
MODEL.CHANNELS_LAST switches (ascnet/engine/step.py, ascnet/engine/trainer.py).

Statistics stay on the device and are read once per LOG_PERIOD: these tests check that the
records and histories are those of a run that reads them every step, that a NaN still stops the
run (at most LOG_PERIOD steps late, before any save), and count the synchronisations of a step
with ``HostSyncCounter`` (on the CPU, the path a GPU runs: ``BatchAugment(cpu_kernel=False)``).
"""
import os

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ascnet.config import get_cfg
from ascnet.data.batch_augment import ParamSampler, param_settings, stack_params
from ascnet.data.build import DATASET_REGISTRY
from ascnet.engine.trainer import NonFiniteLossError, Trainer
from ascnet.modeling.meta_arch.build import MODEL_REGISTRY
from ascnet.utils.events import EventWriter
from metrics_file import read_metrics
from ascnet.utils.host_sync import HostSyncCounter
from test_trainer import _cfg as _trainer_cfg  # same folder (pytest puts it on sys.path)

N, S, T, L, CROP = 4, 2, 4, 20, 16


def _aug_batch(seed, n=N, s=S):
    """uint8 (n, s, T, L, L, 3) clips and drawn parameters (every op on), as the loader makes."""
    g = torch.Generator().manual_seed(seed)
    settings = {**param_settings(get_cfg()), "color_jitter_prob": 1.0, "grayscale_prob": 0.5, "blur_prob": 0.5, "flip_prob": 0.5}
    sampler = ParamSampler(**settings)
    aug = stack_params([sampler.draw(L, L, seed * 100 + i) for i in range(n * s)], (L, L), (L - 2, L - 2))
    aug = {k: v.view(n, s, *v.shape[1:]) for k, v in aug.items()}
    clips = torch.randint(0, 256, (n, s, T, L - 2, L - 2, 3), dtype=torch.uint8, generator=g)
    return {"clips": clips, "aug": aug, "index": torch.arange(n) + seed * n, "label": torch.zeros(n, dtype=torch.long)}


class _AugClips(Dataset):
    """24 'videos' of uint8 clips with augmentation parameters (AUG.DEVICE device)."""

    def __init__(self, cfg, split, mode):
        pass

    def __len__(self):
        return 24

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, key)
        b = _aug_batch(int(seed) % 1000, n=1)
        return {"clips": b["clips"][0], "aug": {k: v[0] for k, v in b["aug"].items()}, "index": i, "label": i % 3}


class _NoSyncSSL(nn.Module):
    """A stand-in pretraining model that makes no host synchronisation: conv + BN on the clips,
    a per-video regression loss, tensor statistics and an EMA-like after_step returning a tensor."""

    def __init__(self, cfg):
        super().__init__()
        self.net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU())
        self.head = nn.Linear(4, 1)
        self.register_buffer("avg", torch.zeros(()))
        self.nan_at = int(os.environ.get("NOSYNC_NAN_AT", "0"))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, batch):
        x = batch["clips"].flatten(0, 1) if batch["clips"].ndim == 6 else batch["clips"]
        y = self.head(self.net(x).mean(dim=(2, 3, 4))).squeeze(1)
        target = batch["index"].float().repeat_interleave(x.shape[0] // batch["index"].shape[0]) / 24.0
        loss = (y - target).pow(2).mean()
        if self.nan_at:  # NaN from step nan_at on, chosen on the device (no host read)
            loss = loss + torch.where(self.steps + 1 >= self.nan_at, float("nan"), 0.0)
        return {"loss_reg": loss, "loss_aux": 0.1 * y.pow(2).mean(), "pos_sim": y.mean().detach(), "bank_fill": 3}

    @torch.no_grad()
    def after_step(self, iteration, max_iter):
        self.steps.add_(1)
        self.avg.lerp_(self.head.weight.mean(), 0.1)
        return {"ema_tau": 1.0 - 0.5 * (max_iter - iteration - 1) / max_iter, "avg_w": self.avg}


if "_NoSyncSSL" not in MODEL_REGISTRY.names():
    MODEL_REGISTRY.register(_NoSyncSSL)
    DATASET_REGISTRY.register(_AugClips)


def _cfg(out, **kw):
    """test_trainer's tiny config with the stand-ins of this file."""
    opts = {"MODEL.META_ARCH": "_NoSyncSSL", "TRAIN.DATASET": "_AugClips", "TRAIN.BATCH_SIZE": N,  # 6 iterations per epoch
            "SOLVER.BASE_BATCH_SIZE": N, "DATA.CROP_SIZE": CROP, "DATA.NUM_FRAMES": T,
            "SOLVER.CLIP_GRAD_NORM": 10.0,  # grad_norm is a statistic too
            "AUG.DEVICE": "device"}  # uint8 clips + parameters, augmented in the step
    return _trainer_cfg(out, **{**opts, **kw})


class _Recording(Trainer):
    """Keeps the per-step history the writer received."""

    def train(self):
        try:
            super().train()
        finally:
            self.history = {k: list(buf.values()) for k, buf in self.writer._history.items()}


def test_statistics_read_once_per_log_period_equal_those_read_every_step(tmp_path):
    runs = {}
    for period in (1, 4):
        torch.manual_seed(0)
        t = _Recording(_cfg(tmp_path / str(period), LOG_PERIOD=period))
        t.train()
        runs[period] = (read_metrics(tmp_path / str(period)), t.history)
    (every, h_every), (batched, h_batched) = runs[1], runs[4]
    assert sorted(batched) == [1, 4, 8, 12]  # the first, every LOG_PERIOD, the last
    timing = ("time", "data_time", "eta_seconds")
    for it, rec in batched.items():
        assert sorted(rec) == sorted(every[it]), it
        for k, v in rec.items():
            if k not in timing:
                assert v == every[it][k], (it, k)
    keys = {"loss", "loss_reg", "loss_aux", "pos_sim", "bank_fill", "grad_norm", "lr", "ema_tau", "avg_w", "time", "data_time"}
    assert set(h_batched) == set(h_every) == keys
    for k in keys - {"time", "data_time"}:  # every step in the history (medians, ETA), in order
        assert [it for _, it in h_batched[k]] == list(range(1, 13)), k
        assert h_batched[k] == h_every[k], k
    assert every[12]["bank_fill"] == 3.0 and isinstance(every[12]["avg_w"], float)


def test_nan_loss_stops_within_log_period_and_before_any_save(tmp_path, monkeypatch):
    monkeypatch.setenv("NOSYNC_NAN_AT", "6")
    t = Trainer(_cfg(tmp_path, LOG_PERIOD=4, **{"TRAIN.CHECKPOINT_ITERS": 4}))
    with pytest.raises(NonFiniteLossError, match=r"^Non-finite loss at iteration 6 \(epoch 1, rank 0\): loss_reg=nan.*checkpoint_iter_0000004"):
        t.train()
    # Read at the end of epoch 1 (iteration 6, before its epoch checkpoint); at the latest it
    # would have been at iteration 8, the next LOG_PERIOD, before the iteration-8 checkpoint.
    assert 6 <= t.iter <= 6 + 4 - 1
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint_iter_0000004.pyth", "last_checkpoint"]
    assert sorted(read_metrics(tmp_path)) == [1, 4]
    assert "Non-finite loss at iteration 6" in (tmp_path / "log.txt").read_text()


def test_nan_loss_mid_epoch_stops_at_the_next_log_period(tmp_path, monkeypatch):
    monkeypatch.setenv("NOSYNC_NAN_AT", "2")
    t = Trainer(_cfg(tmp_path, LOG_PERIOD=5))
    with pytest.raises(NonFiniteLossError, match=r"iteration 2 "):
        t.train()
    assert t.iter == 5 and not os.path.exists(tmp_path / "checkpoints")


def test_a_save_between_log_periods_refuses_a_nan_state(tmp_path, monkeypatch):
    """A signal handler's save_checkpoint sees this rank's queued losses first."""
    monkeypatch.setenv("NOSYNC_NAN_AT", "2")
    t = Trainer(_cfg(tmp_path, LOG_PERIOD=5))
    t.resume_or_load()
    t.writer = EventWriter(str(tmp_path))
    t.model.train()
    for k in range(3):
        _step(t, _aug_batch(k))
    assert len(t.step_stats) == 2  # iterations 2 and 3 (iteration 1 was logged)
    with pytest.raises(NonFiniteLossError, match="iteration 2 "):
        t.save_checkpoint("preempt")
    assert not os.path.exists(tmp_path / "checkpoints" / "preempt.pyth")
    t.writer.close()


def _step(t, batch):
    stats = t.run_step(batch)
    t.iter += 1
    t.epoch_iter += 1
    t.after_step(stats)


def _sync_trainer(tmp_path, **kw):
    # SOLVER.CLIP_GRAD_NORM 0 (the default): torch's clip_grad_norm_ moves each norm with
    # .to(first device), which the counter cannot tell from a device-to-host copy on the CPU.
    kw.setdefault("SOLVER.CLIP_GRAD_NORM", 0.0)
    t = Trainer(_cfg(tmp_path, LOG_PERIOD=100, **kw))
    t.batch_augment.cpu_kernel = False  # the path a GPU runs (the CPU one reads the boxes, free there)
    t.resume_or_load()
    t.writer = EventWriter(str(tmp_path))
    t.model.train()
    return t


def test_the_trainers_parts_of_a_step_make_no_host_synchronisation(tmp_path):
    """prepare_batch (transfer + augmentation) + forward + backward + clipping + optimiser +
    scheduler + after_step with a model that makes none: 0 synchronisations."""
    t = _sync_trainer(tmp_path)
    _step(t, _aug_batch(0))  # iteration 1 is logged
    batch = _aug_batch(1)  # the loader's work, not the step's
    with HostSyncCounter() as syncs:
        _step(t, batch)
    t.writer.close()
    assert syncs.total == 0, dict(syncs.counts)
    assert len(t.step_stats) == 1 and t.iter == 2


def test_a_pretraining_step_makes_at_most_one_host_synchronisation(tmp_path):
    """The real ASCNet step (tiny R3D-18, CPU), after the banks are filled: <= 1."""
    from ascnet.modeling.meta_arch import ascnet as _ascnet  # noqa: F401  (registers ASCNet)

    t = _sync_trainer(
        tmp_path, **{"MODEL.META_ARCH": "ASCNet", "MODEL.BACKBONE.WIDTHS": [4, 8, 8, 8], "MODEL.BACKBONE.STEM_WIDTH": 4,
                     "MODEL.PROJECTION.HIDDEN_DIM": 16, "MODEL.PROJECTION.OUT_DIM": 8, "MODEL.PREDICTOR.HIDDEN_DIM": 16,
                     "MEMORY_BANK.SIZE": 12, "MEMORY_BANK.SEARCH": "torch", "SOLVER.MAX_EPOCH": 20}
    )
    for k in range(4):  # the banks fill (12 entries, 4 videos per step)
        _step(t, _aug_batch(k))
    batch = _aug_batch(4)
    with HostSyncCounter() as syncs:
        _step(t, batch)
    t.writer.close()
    print("syncs of one pretraining step:", dict(syncs.counts))
    assert syncs.total <= 1, dict(syncs.counts)


# ------------------------------------------------------------------------------------------------
# MODEL.COMPILE and MODEL.CHANNELS_LAST
# ------------------------------------------------------------------------------------------------
class _TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.AdaptiveAvgPool3d(1))

    def forward(self, x):
        return self.net(x).flatten(1)


class _TinyTwoTower(nn.Module):
    """Online backbone + head trained, an EMA target backbone: ASCNet's layout in miniature."""

    def __init__(self, cfg):
        super().__init__()
        self.online = nn.ModuleDict({"backbone": _TinyBackbone(), "head": nn.Linear(4, 1)})
        self.target = nn.ModuleDict({"backbone": _TinyBackbone()})
        self.target.backbone.load_state_dict(self.online.backbone.state_dict())

    def forward(self, batch):
        x = batch["clips"].flatten(0, 1)
        f = self.online.backbone(x)
        with torch.no_grad():
            z = self.target.backbone(x)
        loss = (self.online.head(f).squeeze(1) - z.mean(1)).pow(2).mean()
        return {"loss_reg": loss, "feat": f.mean().detach()}

    @torch.no_grad()
    def after_step(self, iteration, max_iter):
        for t, o in zip(self.target.backbone.parameters(), self.online.backbone.parameters()):
            t.lerp_(o, 0.5)
        return {}


if "_TinyTwoTower" not in MODEL_REGISTRY.names():
    MODEL_REGISTRY.register(_TinyTwoTower)


def _tower_cfg(out, **kw):
    return _cfg(out, **{"MODEL.META_ARCH": "_TinyTwoTower", "SOLVER.MAX_EPOCH": 1, "TRAIN.MAX_ITERS": 4, **kw})


def test_compiled_and_channels_last_steps_equal_the_eager_step(tmp_path):
    results = {}
    for name, opts in {"eager": {}, "compile": {"MODEL.COMPILE": True}, "channels_last": {"MODEL.CHANNELS_LAST": True}}.items():
        torch.manual_seed(0)
        t = _Recording(_tower_cfg(tmp_path / name, **opts))
        t.train()
        results[name] = (t, {k: v.clone() for k, v in t.model.state_dict().items()}, t.history)
    eager_t, eager_w, eager_h = results["eager"]
    compiled = results["compile"][0].model
    assert compiled.online.backbone._compiled_call_impl is not None
    assert compiled.target.backbone._compiled_call_impl is not None
    assert compiled.online.head._compiled_call_impl is None  # backbones only
    cl_conv = results["channels_last"][0].model.online.backbone.net[0].weight
    assert cl_conv.is_contiguous(memory_format=torch.channels_last_3d) and not cl_conv.is_contiguous()
    for name in ("compile", "channels_last"):
        _, w, h = results[name]
        assert list(w) == list(eager_w), name  # the same state-dict keys
        for k, v in w.items():
            assert torch.allclose(v.float(), eager_w[k].float(), rtol=1e-4, atol=1e-5), (name, k)
        assert [it for _, it in h["loss"]] == [1, 2, 3, 4]
        for (a, _), (b, _) in zip(h["loss"], eager_h["loss"]):
            assert abs(a - b) <= 1e-4 * abs(b) + 1e-6, (name, a, b)


def test_exact_resume_with_compile_and_channels_last(tmp_path):
    on = {"MODEL.COMPILE": True, "MODEL.CHANNELS_LAST": True, "TRAIN.MAX_ITERS": 0, "SOLVER.MAX_EPOCH": 2}
    torch.manual_seed(0)
    ref = Trainer(_tower_cfg(tmp_path / "ref", **on))
    ref.train()
    ref_w, ref_m = {k: v.clone() for k, v in ref.model.state_dict().items()}, read_metrics(tmp_path / "ref")

    class StopAt5(Trainer):
        def after_step(self, stats):
            super().after_step(stats)
            if self.iter == 5:
                raise KeyboardInterrupt("simulated crash")

    cfg = _tower_cfg(tmp_path / "run", **{**on, "TRAIN.CHECKPOINT_ITERS": 4})
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        StopAt5(cfg).train()
    torch.manual_seed(123)
    resumed = Trainer(cfg)
    resumed.train()
    assert resumed.start_iter == 4 and resumed.iter == 12
    run_m = read_metrics(tmp_path / "run")
    for it in range(5, 13):
        assert run_m[it]["loss"] == ref_m[it]["loss"], it
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, ref_w[k]), k
    # the checkpoint of a compiled channels-last run loads into an eager model as well
    eager = Trainer(_tower_cfg(tmp_path / "run", **{"TRAIN.CHECKPOINT_ITERS": 4, "TRAIN.MAX_ITERS": 0, "SOLVER.MAX_EPOCH": 2}))
    eager.resume_or_load()
    assert eager.iter == 12
    for k, v in eager.model.state_dict().items():
        assert torch.equal(v, ref_w[k]), k


@pytest.mark.parametrize("name", ["R3D18", "R2Plus1D18", "S3DG"])
def test_the_backbones_compile_without_graph_breaks(name):
    import torch._dynamo

    from ascnet.modeling.backbone import build_backbone

    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 8]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    cfg.MODEL.BACKBONE.WIDTH_MULT = 0.125
    net = build_backbone(cfg)
    x = torch.randn(2, 3, 8, 32, 32) if name == "S3DG" else torch.randn(2, 3, 4, 16, 16)
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
