"""The representation monitor of pretraining (TRAIN.MONITOR_PERIOD) and the collapse statistics:
figures in metrics.json and TensorBoard, equal to the retrieval task's on the same weights."""
import json
import math
import os

import pytest
import torch

from ascnet.config import load_config
from ascnet.engine.pretrain import run_pretrain
from ascnet.evaluation.monitor import read_monitor_records
from ascnet.engine.retrieval import run_retrieval

QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")


def _opts(root, out):
    return [
        "DATA.PATH_TO_DATA_DIR", str(root), "DATA.SYNTHETIC.NUM_CLASSES", "4", "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "6",
        "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "MODEL.BACKBONE.WIDTHS", "[4, 8, 8, 16]", "MODEL.BACKBONE.STEM_WIDTH", "4", "DATA_LOADER.NUM_WORKERS", "0",
        "OUTPUT_DIR", str(out), "TRAIN.BATCH_SIZE", "4", "MODEL.PROJECTION.HIDDEN_DIM", "32",
        "MODEL.PROJECTION.OUT_DIM", "16", "MODEL.PREDICTOR.HIDDEN_DIM", "32", "MEMORY_BANK.SIZE", "16",
        "SOLVER.MAX_EPOCH", "2", "TRAIN.MONITOR_PERIOD", "1", "LOG_PERIOD", "2", "TENSORBOARD.ENABLE", "True",
    ]


def test_monitor_and_collapse_statistics_reach_metrics_and_tensorboard(tmp_path, capsys):
    cfg = load_config(QUICKSTART, _opts(tmp_path / "data", tmp_path / "run"))
    trainer = run_pretrain(cfg)
    printed = capsys.readouterr().out
    recs = read_monitor_records(str(tmp_path / "run"))
    # Before the first iteration (random init), after epoch 1 and after epoch 2 (the last).
    assert [r["iteration"] for r in recs] == [0, trainer.iters_per_epoch, trainer.max_iter]
    for r in recs:
        for k in ("monitor_retrieval_top1", "monitor_knn20_top1", "monitor_knn200_top1", "monitor_mAP"):
            assert 0.0 <= r[k] <= 100.0
        assert r["monitor_chance_knn_top1"] == pytest.approx(25.0)
    # The monitor is the retrieval protocol (MONITOR_NUM_CLIPS clips): the same figures as
    # TASK retrieval on the same weights (random init, then the final checkpoint).
    ret_opts = _opts(tmp_path / "data", tmp_path / "ret") + ["RETRIEVAL.NUM_CLIPS", str(cfg.TRAIN.MONITOR_NUM_CLIPS),
                                                             "RETRIEVAL.USE_CACHE", "False", "TASK", "retrieval"]
    for rec, ckpt in ((recs[0], ""), (recs[-1], str(tmp_path / "run"))):
        res = run_retrieval(load_config(QUICKSTART, ret_opts + ["RETRIEVAL.CHECKPOINT_FILE_PATH", ckpt]))["results"]
        assert rec["monitor_retrieval_top1"] == pytest.approx(res["top1"])
        assert rec["monitor_knn20_top1"] == pytest.approx(res["knn20_top1"])
        assert rec["monitor_mAP"] == pytest.approx(res["mAP"])
    # Collapse statistics of each branch in every logged training record.
    train_recs = [json.loads(l) for l in open(tmp_path / "run" / "metrics.json") if '"loss"' in l]
    assert train_recs
    for r in train_recs:
        for b in ("appearance", "speed"):
            assert 0.0 < r[f"collapse_{b}_std"] <= 1.0 and -1.0 <= r[f"collapse_{b}_cos"] <= 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"monitor_knn20_top1", "monitor_retrieval_top1", "collapse_appearance_std", "collapse_speed_cos"} <= set(tags)
    assert [e.step for e in acc.Scalars("monitor_knn20_top1")] == [0, trainer.iters_per_epoch, trainer.max_iter]
    # The run ends with the side-by-side table, chance level and the next commands.
    assert "random init" in printed and "pretrained" in printed and "chance" in printed
    assert "tools/eval_retrieval.py" in printed and "linear_quickstart.yaml" in printed


def test_collapse_stats_values():
    from ascnet.modeling.meta_arch.ascnet import collapse_stats

    d = 64
    z = torch.nn.functional.normalize(torch.randn(4096, d, generator=torch.Generator().manual_seed(0)), dim=1)
    s = collapse_stats(z)
    assert float(s["std"]) == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert abs(float(s["cos"])) < 0.01
    same = torch.nn.functional.normalize(torch.ones(8, d), dim=1)
    s = collapse_stats(same)
    assert float(s["std"]) == pytest.approx(0.0, abs=1e-6) and float(s["cos"]) == pytest.approx(1.0)
    # Reference: the mean of the off-diagonal cosines.
    z = torch.nn.functional.normalize(torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    gram = z @ z.T
    assert float(collapse_stats(z)["cos"]) == pytest.approx(float((gram.sum() - gram.trace()) / 30), abs=1e-6)


def test_motion_diagnostics_in_monitor_retrieval_task_and_json(tmp_path, capsys):
    # The direction_speed preset (classes with factors), both diagnostics in the monitor and in
    # TASK retrieval: the same figures on the same weights, the motion projection read too.
    motion = ["DATA.SYNTHETIC.PRESET", "direction_speed", "DATA.SYNTHETIC.CLASS_SCENE_PROB", "0.0", "AUG.FLIP_PROB", "0.0",
              "SOLVER.MAX_EPOCH", "1", "TRAIN.MONITOR_DIAGNOSTICS", "['static_bias', 'speed']",
              "RETRIEVAL.SPEED_PROBE_CLIPS", "2", "TENSORBOARD.ENABLE", "False"]
    cfg = load_config(QUICKSTART, _opts(tmp_path / "data", tmp_path / "run") + motion)
    run_pretrain(cfg)
    printed = capsys.readouterr().out
    last = read_monitor_records(str(tmp_path / "run"))[-1]
    for k in ("shuffle_top1", "shuffle_drop_top1", "repeat_drop_knn20_top1", "speed_probe_top1",
              "motion_projection_speed_probe_top1", "factor_direction_top1", "factor_speed_top1"):
        assert 0.0 <= abs(last["monitor_" + k]) <= 100.0, k
    assert last["monitor_speed_probe_chance"] == 50.0
    assert last["monitor_factor_direction_chance"] == pytest.approx(50.0)  # 4 classes: 2 directions
    assert "shuffle drop" in printed and "direction top-1" in printed
    ret = _opts(tmp_path / "data", tmp_path / "ret") + motion + [
        "TASK", "retrieval", "RETRIEVAL.NUM_CLIPS", str(cfg.TRAIN.MONITOR_NUM_CLIPS), "RETRIEVAL.USE_CACHE", "False",
        "RETRIEVAL.DIAGNOSTICS", "['static_bias', 'speed']", "RETRIEVAL.CHECKPOINT_FILE_PATH", str(tmp_path / "run")]
    out = run_retrieval(load_config(QUICKSTART, ret))
    d = out["diagnostics"]
    for k in ("shuffle_top1", "repeat_top1", "shuffle_drop_knn20_top1", "speed_probe_top1",
              "motion_projection_speed_probe_top1", "factor_direction_top1", "factor_speed_top1"):
        assert d[k] == pytest.approx(last["monitor_" + k]), k
    assert d["shuffle_top1"] + d["shuffle_drop_top1"] == pytest.approx(out["results"]["top1"])
    assert json.load(open(out["json"]))["diagnostics"] == pytest.approx(d)
    printed = capsys.readouterr().out
    assert "static-bias probe" in printed and "speed probe (motion_projection)" in printed
    with pytest.raises(ValueError, match="choose among"):
        run_retrieval(load_config(QUICKSTART, ret + ["RETRIEVAL.DIAGNOSTICS", "['shuffle']"]))
