"""tools/eval_splits.py: the task on splits 1, 2, 3, each reported, and the mean."""
import json
import os
import subprocess
import sys

import pytest

from ascnet.config import load_config
from ascnet.engine.downstream import DownstreamError
from ascnet.engine.splits import run_splits

from test_downstream import tiny_opts  # same folder (pytest puts it on sys.path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_three_splits_and_mean(data_root, tmp_path, capsys):
    opts = tiny_opts(data_root, tmp_path / "runs", "linear") + ["LINEAR.MAX_EPOCH", "1", "TEST.NUM_SPATIAL_CROPS", "1"]
    out = run_splits(None, opts, splits=(1, 2, 3))
    assert sorted(out["per_split"]) == [1, 2, 3]
    for s in (1, 2, 3):  # each split ran in its own folder, on its own test videos
        saved = json.load(open(tmp_path / "runs" / f"split{s}" / f"test_results_split{s}.json"))
        assert saved["protocol"]["split_id"] == s
        assert saved["results"] == out["per_split"][s]
    top1 = [out["per_split"][s]["top1"] for s in (1, 2, 3)]
    assert out["mean"]["top1"] == pytest.approx(sum(top1) / 3)
    # Every generated video is a test video of exactly one split (groups split in thirds).
    assert out["mean"]["num_videos"] == 24
    printed = capsys.readouterr().out
    assert "mean" in printed and f"{out['mean']['top1']:.2f}" in printed
    assert json.load(open(out["summary"]))["mean"]["top1"] == pytest.approx(out["mean"]["top1"])


def test_tool_help_runs():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "eval_splits.py"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--splits" in r.stdout


def test_wrong_num_classes_is_a_clear_error(data_root, tmp_path):
    cfg = load_config(None, tiny_opts(data_root, tmp_path, "linear") + ["MODEL.NUM_CLASSES", "5", "TRAIN.ENABLE", "False",
                                                                       "TEST.CHECKPOINT_FILE_PATH", ""])
    from ascnet.engine.downstream import evaluate_classifier
    from ascnet.modeling.meta_arch import build_model

    with pytest.raises(DownstreamError, match="MODEL.NUM_CLASSES 4"):
        evaluate_classifier(cfg, build_model(cfg))
