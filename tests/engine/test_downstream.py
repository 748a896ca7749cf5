"""Downstream tasks on a tiny generated dataset: linear protocol, fine-tuning, multi-view test
(every video once, deterministic, 1 and 2 processes)."""
import json
import os

import pytest
import torch

from ascnet.config import load_config
from ascnet.engine.downstream import apply_task_recipe, run_finetune, run_linear, run_test
from ascnet.modeling import build_backbone
from ascnet.utils.checkpoint import Checkpointer


def tiny_opts(root, out, task):
    return [
        "TASK", task, "MODEL.META_ARCH", "Classifier", "MODEL.NUM_CLASSES", "4",
        "TRAIN.DATASET", "Synthetic", "TEST.DATASET", "Synthetic",
        "DATA.PATH_TO_DATA_DIR", str(root), "DATA.SYNTHETIC.NUM_CLASSES", "4",
        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "6", "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32",
        "DATA.NUM_FRAMES", "8", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "DATA.TARGET_FPS", "0",
        "MODEL.BACKBONE.WIDTHS", "[4, 8, 8, 16]", "MODEL.BACKBONE.STEM_WIDTH", "4",
        # 16 training videos in batches of 6 (the last one dropped in training only); 8 test
        # videos in batches of 3: neither divides the split.
        "TRAIN.BATCH_SIZE", "6", "TEST.BATCH_SIZE", "3", "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.NUM_SPATIAL_CROPS", "3",
        "LINEAR.MAX_EPOCH", "2", "FINETUNE.MAX_EPOCH", "1", "FINETUNE.WARMUP_EPOCHS", "0.0",
        "OUTPUT_DIR", str(out), "DATA_LOADER.NUM_WORKERS", "0", "TENSORBOARD.ENABLE", "False", "LOG_PERIOD", "1",
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def _pretrain_ckpt(cfg, path):
    torch.manual_seed(7)
    b = build_backbone(cfg)
    # Make BN statistics non-trivial so that "unchanged" is a real check.
    for m in b.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"online.backbone.{k}": v.clone() for k, v in b.state_dict().items()}
    state["online.proj_a.net.0.weight"] = torch.randn(8, 16)  # projections are dropped
    torch.save({"model": state}, path)
    return {k: v.clone() for k, v in b.state_dict().items()}


def _num_test_videos(cfg):
    from ascnet.data import build_dataset

    return len(build_dataset(cfg, "test", "test"))


def test_recipes_are_task_defaults(data_root, tmp_path):
    cfg = load_config(None, tiny_opts(data_root, tmp_path, "linear"))
    lin = apply_task_recipe(load_config(None, ["TASK", "linear"]), "linear")
    assert (lin.SOLVER.BASE_LR, lin.SOLVER.WEIGHT_DECAY, lin.SOLVER.MAX_EPOCH) == (0.1, 0.0, 100)
    ft = apply_task_recipe(load_config(None, ["TASK", "finetune"]), "finetune")
    assert (ft.SOLVER.BASE_LR, ft.SOLVER.MAX_EPOCH, ft.SOLVER.LR_POLICY) == (0.1, 30, "cosine")
    assert apply_task_recipe(cfg, "linear").SOLVER.MAX_EPOCH == 2


def test_linear_protocol_keeps_backbone_and_counts_every_video(data_root, tmp_path):
    ckpt = tmp_path / "pretrain.pyth"
    cfg = load_config(None, tiny_opts(data_root, tmp_path / "lin", "linear") + [
        "TRAIN.CHECKPOINT_FILE_PATH", str(ckpt), "TRAIN.EVAL_PERIOD", "2", "TEST.NUM_SPATIAL_CROPS", "1"])
    ref = _pretrain_ckpt(cfg, ckpt)
    res = run_linear(cfg)
    assert res["num_videos"] == _num_test_videos(cfg) == 8
    final = Checkpointer.read(Checkpointer(cfg.OUTPUT_DIR, torch.nn.Identity()).get_checkpoint_file())["model"]
    for k, v in ref.items():  # weights AND BN running statistics unchanged by 2 epochs of training
        assert torch.equal(final[f"backbone.{k}"], v), k
    assert not torch.equal(final["head.fc.weight"], torch.zeros_like(final["head.fc.weight"]))
    with open(os.path.join(cfg.OUTPUT_DIR, "test_results_split1.json")) as f:
        saved = json.load(f)
    assert saved["results"]["num_videos"] == 8 and saved["protocol"]["views"] == 2
    # TRAIN.EVAL_PERIOD 2: the multi-view test after epoch 2 is in metrics.json, equal to the final one.
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json")) as f:
        evals = [r for r in map(json.loads, f) if "test_top1" in r]
    assert len(evals) == 1 and evals[0]["test_top1"] == pytest.approx(res["top1"])
    # run_test on the same output folder gives exactly the same numbers (deterministic).
    again = run_test(load_config(None, tiny_opts(data_root, tmp_path / "lin", "test") + ["TEST.NUM_SPATIAL_CROPS", "1"]))
    assert (again["top1"], again["top5"]) == (res["top1"], res["top5"])


def test_finetune_changes_backbone_and_test_is_deterministic(data_root, tmp_path):
    ckpt = tmp_path / "pretrain.pyth"
    cfg = load_config(None, tiny_opts(data_root, tmp_path / "ft", "finetune") + ["TRAIN.CHECKPOINT_FILE_PATH", str(ckpt)])
    ref = _pretrain_ckpt(cfg, ckpt)
    res = run_finetune(cfg)
    final = Checkpointer.read(Checkpointer(cfg.OUTPUT_DIR, torch.nn.Identity()).get_checkpoint_file())["model"]
    assert any(not torch.equal(final[f"backbone.{k}"], v) for k, v in ref.items() if v.is_floating_point())
    t1 = run_test(load_config(None, tiny_opts(data_root, tmp_path / "ft", "test")))
    t2 = run_test(load_config(None, tiny_opts(data_root, tmp_path / "ft", "test")))
    assert t1 == t2 and t1["num_videos"] == res["num_videos"] == 8


def test_test_refuses_a_pretraining_checkpoint(data_root, tmp_path):
    from ascnet.engine.downstream import DownstreamError

    ckpt = tmp_path / "pretrain.pyth"
    cfg = load_config(None, tiny_opts(data_root, tmp_path, "test") + ["TEST.CHECKPOINT_FILE_PATH", str(ckpt)])
    _pretrain_ckpt(cfg, ckpt)
    with pytest.raises(DownstreamError, match="no classifier head"):
        run_test(cfg)
    with pytest.raises(DownstreamError, match="TEST.CHECKPOINT_FILE_PATH"):
        run_test(load_config(None, tiny_opts(data_root, tmp_path / "empty", "test")))


def test_two_processes_count_every_video_once(data_root, tmp_path):
    from ascnet.engine.launch import launch

    # A trained classifier checkpoint to test (random weights are enough to count videos).
    out = tmp_path / "two"
    cfg1 = load_config(None, tiny_opts(data_root, out, "test"))
    from ascnet.modeling.meta_arch import build_model

    torch.manual_seed(0)
    model = build_model(cfg1)
    Checkpointer(str(out), model).save("checkpoint_final")
    single = run_test(cfg1)
    # 2 gloo processes, global test batch 4 (2 per rank): rank shards of 4 videos each.
    cfg2 = load_config(None, tiny_opts(data_root, out, "test") + ["NUM_CPU_PROCESSES", "2", "TEST.BATCH_SIZE", "4"])
    os.remove(os.path.join(out, "test_results_split1.json"))
    launch(cfg2, run_test)
    with open(os.path.join(out, "test_results_split1.json")) as f:
        saved = json.load(f)["results"]
    assert saved["num_videos"] == 8
    assert saved["top1"] == pytest.approx(single["top1"]) and saved["top5"] == pytest.approx(single["top5"])


def test_linear_protocol_in_two_processes(data_root, tmp_path):
    """DDP (gloo) with a frozen backbone: trains, keeps the backbone, tests every video once."""
    from ascnet.engine.launch import launch

    ckpt = tmp_path / "pretrain.pyth"
    out = tmp_path / "ddp"
    cfg = load_config(None, tiny_opts(data_root, out, "linear") + [
        "TRAIN.CHECKPOINT_FILE_PATH", str(ckpt), "NUM_CPU_PROCESSES", "2", "TEST.BATCH_SIZE", "4",
        "TEST.NUM_SPATIAL_CROPS", "1", "LINEAR.MAX_EPOCH", "1"])
    ref = _pretrain_ckpt(cfg, ckpt)
    launch(cfg, run_linear)
    final = Checkpointer.read(Checkpointer(str(out), torch.nn.Identity()).get_checkpoint_file())["model"]
    assert all(torch.equal(final[f"backbone.{k}"], v) for k, v in ref.items())
    with open(out / "test_results_split1.json") as f:
        assert json.load(f)["results"]["num_videos"] == 8
