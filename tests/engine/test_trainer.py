"""Trainer with a tiny stand-in model and dataset: loop, logs, checkpoints, exact resume,
NaN stop, preemption contract (signals deferred to iteration boundaries)."""
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ascnet.config import get_cfg
from ascnet.data.utils import AnnotationError
from ascnet.data.build import DATASET_REGISTRY
from ascnet.engine.preemption import get_current_trainer
from ascnet.engine.trainer import NonFiniteLossError, Trainer
from ascnet.modeling.meta_arch.build import MODEL_REGISTRY
from ascnet.utils.checkpoint import Checkpointer
from metrics_file import read_metrics


class _TinyClips(Dataset):
    """24 'videos'; a sample's clips are drawn from its per-sample seed (as the real datasets)."""

    def __init__(self, cfg, split, mode):
        self.mode, self.s = mode, len(cfg.DATA.SPEEDS)

    def __len__(self):
        return 24

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, key)
        g = torch.Generator().manual_seed(int(seed))
        shape = (self.s, 3, 2, 4, 4) if self.mode == "pretrain" else (3, 2, 4, 4)
        return {"clips": torch.randn(shape, generator=g) + i / 24.0, "index": i, "label": i % 3}


class _TinySSL(nn.Module):
    """Regresses a per-video target from pooled clips; has BN, an EMA-like after_step and stats."""

    def __init__(self, cfg):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.nan_at = int(os.environ.get("TINY_NAN_AT", "0"))

    def forward(self, batch):
        x = batch["clips"].mean(dim=(-3, -2, -1))  # (N, S, C)
        x = x.flatten(0, 1) if x.ndim == 3 else x
        y = self.net(x).squeeze(1)
        target = batch["index"].float().repeat_interleave(x.shape[0] // batch["index"].shape[0]) / 24.0
        loss = (y - target).pow(2).mean()
        if self.nan_at and int(self.steps) + 1 == self.nan_at:
            loss = loss * float("nan")
        return {"loss_reg": loss, "loss_aux": 0.1 * y.pow(2).mean(), "pos_sim": y.mean().detach(), "vec": y.detach()}

    def after_step(self, iteration, max_iter):
        self.steps.fill_(iteration + 1)
        return {"ema_tau": 1.0 - 0.5 * (max_iter - iteration - 1) / max_iter}


if "_TinySSL" not in MODEL_REGISTRY.names():
    MODEL_REGISTRY.register(_TinySSL)
    DATASET_REGISTRY.register(_TinyClips)


def _cfg(out, **kw):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(out)
    cfg.MODEL.META_ARCH = "_TinySSL"
    cfg.TRAIN.DATASET = "_TinyClips"
    cfg.AUG.DEVICE = "loader"  # _TinyClips returns float clips, as a dataset that augments itself
    cfg.TRAIN.BATCH_SIZE = 4  # 6 iterations per epoch
    cfg.DATA_LOADER.NUM_WORKERS = 0
    cfg.SOLVER.MAX_EPOCH = 2
    cfg.SOLVER.WARMUP_EPOCHS = 0.5
    cfg.SOLVER.BASE_LR = 0.05
    cfg.SOLVER.BASE_BATCH_SIZE = 4
    cfg.LOG_PERIOD = 1
    cfg.TENSORBOARD.ENABLE = False
    cfg.TRAIN.AUTO_RESUME = True
    cfg.DETERMINISTIC = True
    for k, v in kw.items():
        node = cfg
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    cfg.freeze()
    return cfg


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_full_run_logs_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    t = Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4, "TENSORBOARD.ENABLE": True}))
    assert t.iters_per_epoch == 6 and t.max_iter == 12 and t.mode == "pretrain"
    t.train()
    assert t.iter == 12 and get_current_trainer() is None
    recs = read_metrics(tmp_path)
    assert sorted(recs) == list(range(1, 13))
    r = recs[12]
    for key in ("loss", "loss_reg", "loss_aux", "lr", "ema_tau", "pos_sim", "time", "data_time", "eta_seconds"):
        assert key in r, key
    assert "vec" not in r  # non-scalar model outputs are not logged
    assert r["loss"] == pytest.approx(r["loss_reg"] + r["loss_aux"], rel=1e-5)
    assert r["ema_tau"] == pytest.approx(1.0) and r["epoch"] == 1
    assert recs[1]["lr"] == pytest.approx(0.0) and recs[2]["lr"] == pytest.approx(0.05 / 3)
    files = sorted(os.listdir(tmp_path / "checkpoints"))
    assert files == ["checkpoint_epoch_00001.pyth", "checkpoint_epoch_00002.pyth", "checkpoint_iter_0000004.pyth",
                     "checkpoint_iter_0000008.pyth", "checkpoint_iter_0000012.pyth", "last_checkpoint"]
    assert Checkpointer(str(tmp_path), nn.Identity()).get_checkpoint_file().endswith("checkpoint_epoch_00002.pyth")
    assert (tmp_path / "config.yaml").read_text().count("_TinySSL") == 1
    assert os.listdir(tmp_path / "tensorboard")
    log = (tmp_path / "log.txt").read_text()
    assert "json_stats:" in log and " eta " in log and "Training finished at iteration 12" in log


class _StopAt(Trainer):
    """Crashes (like a kill) right after iteration `stop` completes."""

    stop = 0

    def after_step(self, stats):
        super().after_step(stats)
        if self.iter == self.stop:
            raise KeyboardInterrupt("simulated crash")


def test_exact_resume_mid_epoch(tmp_path):
    torch.manual_seed(0)
    ref = Trainer(_cfg(tmp_path / "ref"))
    ref.train()
    ref_w, ref_m = _weights(ref), read_metrics(tmp_path / "ref")

    torch.manual_seed(0)
    cfg = _cfg(tmp_path / "run", **{"TRAIN.CHECKPOINT_ITERS": 4})
    crashed = _StopAt(cfg)
    crashed.stop = 5  # the last checkpoint is at iteration 4, mid-epoch 1
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    torch.manual_seed(123)  # a new process would start with other RNG / weights
    resumed = Trainer(cfg)
    resumed.train()
    assert resumed.start_iter == 4 and resumed.iter == 12
    run_m = read_metrics(tmp_path / "run")
    for it in range(5, 13):
        for key in ("loss", "loss_reg", "lr", "ema_tau"):
            assert run_m[it][key] == ref_m[it][key], (it, key)
    for k, v in _weights(resumed).items():
        assert torch.equal(v, ref_w[k]), k


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_NAN_AT", "6")
    cfg = _cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4})
    t = Trainer(cfg)
    with pytest.raises(NonFiniteLossError, match=r"iteration 6 .*loss_reg=nan.*checkpoint_iter_0000004"):
        t.train()
    ck = Checkpointer(str(tmp_path), nn.Linear(1, 1))
    assert ck.get_checkpoint_file().endswith("checkpoint_iter_0000004.pyth")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint_iter_0000004.pyth", "last_checkpoint"]
    data = Checkpointer.read(ck.get_checkpoint_file())
    assert data["iteration"] == 4 and all(torch.isfinite(v).all() for v in data["model"].values() if v.is_floating_point())
    assert "Non-finite loss at iteration 6" in (tmp_path / "log.txt").read_text()


def test_initial_weights_when_nothing_to_resume(tmp_path):
    src = Trainer(_cfg(tmp_path / "src", **{"TRAIN.MAX_ITERS": 3}))
    src.train()
    path = Checkpointer(str(tmp_path / "src"), nn.Identity()).get_checkpoint_file()

    class Recording(Trainer):
        seen = []

        def load_initial_weights(self, p):
            self.seen.append(p)
            return super().load_initial_weights(p)

    t = Recording(_cfg(tmp_path / "dst", **{"TRAIN.CHECKPOINT_FILE_PATH": path, "TRAIN.MAX_ITERS": 1}))
    t.resume_or_load()
    assert Recording.seen == [path] and t.iter == 0
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, src.model.state_dict()[k]), k


def test_preemption_signal_saves_at_iteration_boundary(tmp_path):
    saved = []

    def handler(signum, frame):
        tr = get_current_trainer()
        saved.append((tr.iter, tr.save_checkpoint("preempt")))

    class SignalMidStep(Trainer):
        def run_step(self, batch):
            if self.iter == 2:  # inside iteration 3: the handler must wait for its end
                os.kill(os.getpid(), signal.SIGUSR2)
            return super().run_step(batch)

    old = signal.signal(signal.SIGUSR2, handler)
    try:
        t = SignalMidStep(_cfg(tmp_path, **{"TRAIN.MAX_ITERS": 5}))
        t.train()
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert len(saved) == 1 and saved[0][0] == 3
    data = Checkpointer.read(saved[0][1])
    assert data["iteration"] == 3 and data["epoch"] == 0 and data["epoch_iter"] == 3
    assert data["scheduler"]["last_epoch"] == 3 and int(data["model"]["steps"]) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cuda_amp_training_and_resume(tmp_path, dtype):
    cfg = _cfg(tmp_path, **{"NUM_GPUS": 1, "AMP.ENABLE": True, "AMP.DTYPE": dtype, "TRAIN.MAX_ITERS": 4,
                            "DETERMINISTIC": False})
    t = Trainer(cfg)
    assert t.device.type == "cuda" and (t.scaler is not None) == (dtype == "float16")
    t.train()
    recs = read_metrics(tmp_path)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in recs.values())
    data = Checkpointer.read(Checkpointer(str(tmp_path), nn.Identity()).get_checkpoint_file())
    assert data["iteration"] == 4 and ("scaler" in data) == (dtype == "float16")
    assert all(v.device.type == "cpu" for v in data["model"].values())
    resumed = Trainer(_cfg(tmp_path, **{"NUM_GPUS": 1, "AMP.DTYPE": dtype, "TRAIN.MAX_ITERS": 6, "DETERMINISTIC": False}))
    resumed.train()
    assert resumed.start_iter == 4 and resumed.iter == 6


def test_epoch_end_reports_replaced_videos(caplog):
    """Bad videos replaced during an epoch are reported in the log, with their paths."""
    import logging
    import types

    from ascnet.engine.trainer import Trainer

    class _DS:
        def failure_stats(self):
            return {"loads": 20, "failures": 2, "failure_ratio": 0.1, "bad_videos": 1, "bad_paths": ["/data/broken.avi"]}

    fake = types.SimpleNamespace(train_loader=types.SimpleNamespace(dataset=_DS()))
    with caplog.at_level(logging.WARNING, logger="ascnet.engine.trainer"):
        Trainer.log_data_failures(fake, epoch=0)
    assert "2 of 20 video loads failed" in caplog.text and "/data/broken.avi" in caplog.text


def test_prepare_batch_applies_the_batched_augmentation(tmp_path):
    """uint8 clips + drawn parameters (AUG.DEVICE device) -> augmented float clips on the device."""
    from ascnet.data.batch_augment import BatchAugment, build_param_sampler, stack_params

    t = Trainer(_cfg(tmp_path, **{"DATA.CROP_SIZE": 8, "AUG.DEVICE": "device"}))
    sampler = build_param_sampler(t.cfg)
    aug = stack_params([sampler.draw(12, 12, s) for s in range(6)], (12, 12), (12, 12))
    aug = {k: v.view(3, 2, *v.shape[1:]) for k, v in aug.items()}  # (N=3, S=2, ...)
    clips = torch.randint(0, 256, (3, 2, 4, 12, 12, 3), dtype=torch.uint8)  # (N, S, T, H, W, C)
    out = t.prepare_batch({"clips": clips, "aug": aug, "index": torch.arange(3)})
    assert "aug" not in out and out["clips"].dtype == torch.float32 and out["clips"].shape == (3, 2, 3, 4, 8, 8)
    ref = BatchAugment(8, t.cfg.DATA.MEAN, t.cfg.DATA.STD)(clips, aug)
    assert torch.allclose(out["clips"], ref) and out["clips"].device == t.device
    plain = torch.randn(3, 2, 3, 2, 4, 4)
    with pytest.raises(AnnotationError, match=r"^Dataset _TinyClips \(TRAIN.DATASET\) returned torch.float32 clips.*AUG.DEVICE loader"):
        t.prepare_batch({"clips": plain, "index": torch.arange(3)})
    # a dataset that augments its clips itself (AUG.DEVICE loader): float clips pass through
    t = Trainer(_cfg(tmp_path / "loader", **{"DATA.CROP_SIZE": 8, "AUG.DEVICE": "loader"}))
    assert t.prepare_batch({"clips": plain, "index": torch.arange(3)})["clips"] is plain
