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


def test_table_orders_top_k_numerically_and_counts_retrieval_queries(tmp_path):
    from ascnet.engine.splits import format_splits_table, split_result, summarize

    # The result files hold their keys sorted as text: top1, top10, top20, top5, mAP.
    for s in (1, 2):
        blob = {"results": {"top1": 10.0 * s, "top10": 30.0, "top20": 40.0, "top5": 20.0, "mAP": 5.0},
                "protocol": {"num_queries": 7 + s}}
        (tmp_path / f"retrieval_split{s}_abc.json").write_text(json.dumps(blob, sort_keys=True))
    per_split = {s: split_result("retrieval", str(tmp_path), s) for s in (1, 2)}
    assert per_split[1]["num_videos"] == 8
    mean = summarize(per_split)
    lines = format_splits_table("retrieval", "UCF101", per_split, mean).splitlines()
    assert lines[1].split() == ["split", "top1", "top5", "top10", "top20", "mAP", "videos"]
    assert lines[2].split() == ["1", "10.00", "20.00", "30.00", "40.00", "5.00", "8"]
    assert lines[-1].split() == ["mean", "15.00", "20.00", "30.00", "40.00", "5.00", "17"]
    # Results without a video count get no videos column (not a column of zeros).
    no_count = {1: {"top1": 1.0, "top5": 2.0}}
    assert "videos" not in format_splits_table("linear", "HMDB51", no_count, summarize(no_count))
