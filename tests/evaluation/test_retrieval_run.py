"""Retrieval task end to end on a tiny generated dataset: determinism, cache keyed by checkpoint
content, backends, the JSON output and the HTML visualisation."""
import json
import os
import re

import pytest
import torch

from ascnet.config import load_config
from ascnet.engine.retrieval import run_retrieval
from ascnet.modeling import build_backbone


def tiny_opts(root, out):
    return [
        "TASK", "retrieval", "TEST.DATASET", "Synthetic", "TRAIN.DATASET", "Synthetic",
        "DATA.PATH_TO_DATA_DIR", str(root), "DATA.SYNTHETIC.NUM_CLASSES", "4",
        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "6", "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32",
        "DATA.NUM_FRAMES", "8", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "DATA.TARGET_FPS", "0",
        "RETRIEVAL.NUM_CLIPS", "2", "RETRIEVAL.BATCH_SIZE", "3", "RETRIEVAL.TOPK", "[1, 5, 20]",
        "MODEL.BACKBONE.WIDTHS", "[4, 8, 8, 16]", "MODEL.BACKBONE.STEM_WIDTH", "4",
        "OUTPUT_DIR", str(out), "DATA_LOADER.NUM_WORKERS", "0",
    ]


def _save_pretrain_ckpt(cfg, path, seed):
    torch.manual_seed(seed)
    b = build_backbone(cfg)
    state = {f"online.backbone.{k}": v for k, v in b.state_dict().items()}
    state["online.proj_a.weight"] = torch.zeros(3, 3)  # dropped: not a backbone key
    torch.save({"model": state}, path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_deterministic_cached_and_invalidated_by_checkpoint_content(data_root, tmp_path):
    ckpt = tmp_path / "pretrain.pyth"
    cfg = load_config(None, tiny_opts(data_root, tmp_path / "out") + ["RETRIEVAL.CHECKPOINT_FILE_PATH", str(ckpt)])
    _save_pretrain_ckpt(cfg, ckpt, seed=1)
    r1 = run_retrieval(cfg)
    assert r1["protocol"]["features_from_cache"] is False
    assert r1["load_report"]["missing"] == []
    r2 = run_retrieval(cfg)
    assert r2["protocol"]["features_from_cache"] is True
    assert r2["results"] == r1["results"] and torch.equal(r2["neighbors"], r1["neighbors"])
    # Without the cache: the same numbers again (no evaluation-time randomness).
    cfg_nc = load_config(None, tiny_opts(data_root, tmp_path / "out2") + [
        "RETRIEVAL.CHECKPOINT_FILE_PATH", str(ckpt), "RETRIEVAL.USE_CACHE", "False"])
    r3 = run_retrieval(cfg_nc)
    assert r3["results"] == r1["results"] and torch.equal(r3["neighbors"], r1["neighbors"])
    # Same path, new content: never the stale features.
    _save_pretrain_ckpt(cfg, ckpt, seed=2)
    r4 = run_retrieval(cfg)
    assert r4["protocol"]["features_from_cache"] is False
    assert r4["protocol"]["weights"] != r1["protocol"]["weights"]
    # The JSON states the protocol beside the results.
    with open(r1["json"]) as f:
        saved = json.load(f)
    assert saved["results"] == r1["results"]
    assert saved["protocol"]["num_clips"] == 2 and saved["protocol"]["backend"] == "faiss"
    assert saved["protocol"]["num_queries"] + saved["protocol"]["num_gallery"] == 24


def test_backends_agree_and_centring_is_a_protocol_key(data_root, tmp_path, capsys):
    base = tiny_opts(data_root, tmp_path)
    r_f = run_retrieval(load_config(None, base))
    out = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in out  # random init is stated loudly
    assert re.search(r"top1 .*clips=2 crops=1 pool=mean center=False backend=faiss .*weights=random-init", out)
    r_t = run_retrieval(load_config(None, base + ["RETRIEVAL.BACKEND", "torch"]))
    assert r_t["results"] == r_f["results"] and torch.equal(r_t["neighbors"], r_f["neighbors"])
    r_c = run_retrieval(load_config(None, base + ["RETRIEVAL.CENTER", "True"]))
    assert r_c["protocol"]["center"] is True and "center=True" in capsys.readouterr().out


def test_the_console_shows_the_table_and_the_banner_once_and_log_txt_keeps_them(data_root, tmp_path, capsys):
    """With the tool's logging set up (console and log.txt), each is printed once, not once by
    print and again by the console handler."""
    import logging

    from ascnet.utils.logging import LOGGER_NAME, setup_logging

    cfg = load_config(None, tiny_opts(data_root, tmp_path))
    setup_logging(cfg.OUTPUT_DIR, rank=0)
    try:
        run_retrieval(cfg)
        out = capsys.readouterr().out
    finally:
        for h in list(logging.getLogger(LOGGER_NAME).handlers):
            if getattr(h, "_ascnet", False):
                h.flush()
                logging.getLogger(LOGGER_NAME).removeHandler(h)
    assert out.count("metric ") == 1 and out.count("knn20_top1") == 1, out
    assert out.count("RANDOMLY INITIALISED") == 1, out
    log = (tmp_path / "log.txt").read_text()
    assert log.count("metric ") == 1 and "RANDOMLY INITIALISED" in log


def test_missing_checkpoint_is_a_clear_error(data_root, tmp_path):
    cfg = load_config(None, tiny_opts(data_root, tmp_path) + ["RETRIEVAL.CHECKPOINT_FILE_PATH", str(tmp_path / "nope.pyth")])
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        run_retrieval(cfg)


def test_visualization_html_images_exist(data_root, tmp_path):
    cfg = load_config(None, tiny_opts(data_root, tmp_path) + ["RETRIEVAL.VISUALIZE", "True", "RETRIEVAL.VIS_NUM_QUERIES", "2"])
    res = run_retrieval(cfg)
    page = res["visualization"]
    html = open(page).read()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 2 * 6 + 1  # 2 queries x (query + 5 neighbours) + contact sheet
    for s in srcs:
        assert os.path.isfile(os.path.join(os.path.dirname(page), s)), s
    assert "(right)" in html or "(wrong)" in html
    # Motion, not one frame: every shown video is an animated GIF of its clip's frames.
    from PIL import Image

    for s in srcs[:-1]:
        with Image.open(os.path.join(os.path.dirname(page), s)) as im:
            assert s.endswith(".gif") and im.n_frames == cfg.DATA.NUM_FRAMES
    # Each neighbour with its similarity and path; the page states the sample shown.
    assert html.count("sim 0.") + html.count("sim -0.") + html.count("sim 1.") == 2 * 5
    assert html.count(".avi</small>") == 2 * 6
    assert "2 of the" in html and "sampled with RNG_SEED" in html
    # The printed table gives each metric its chance level, kNN included.
    saved = json.load(open(res["json"]))
    assert {"knn20_top1", "knn200_top1"} <= set(saved["results"]) and saved["chance"]["top1"] > 0


def test_two_processes_give_the_single_process_result(data_root, tmp_path):
    from ascnet.engine.launch import launch

    single = run_retrieval(load_config(None, tiny_opts(data_root, tmp_path / "one") + ["RETRIEVAL.BATCH_SIZE", "4"]))
    cfg2 = load_config(None, tiny_opts(data_root, tmp_path / "two") + ["RETRIEVAL.BATCH_SIZE", "4", "NUM_CPU_PROCESSES", "2"])
    launch(cfg2, run_retrieval)  # 2 gloo processes: sharded extraction, gathered on rank 0
    with open(tmp_path / "two" / os.path.basename(single["json"])) as f:
        saved = json.load(f)
    assert saved["results"] == pytest.approx(single["results"])
    assert saved["protocol"]["num_queries"] == single["protocol"]["num_queries"]


def test_damaged_feature_cache_is_recomputed(data_root, tmp_path, caplog):
    ckpt = tmp_path / "pretrain.pyth"
    cfg = load_config(None, tiny_opts(data_root, tmp_path / "out") + ["RETRIEVAL.CHECKPOINT_FILE_PATH", str(ckpt)])
    _save_pretrain_ckpt(cfg, ckpt, seed=1)
    r1 = run_retrieval(cfg)
    cache = tmp_path / "out" / "retrieval_cache"
    files = [cache / n for n in os.listdir(cache)]
    assert files and not [f for f in files if ".tmp-" in f.name]
    for f in files:  # a kill or a full disk while another tool wrote it
        f.write_bytes(f.read_bytes()[:64])
    r2 = run_retrieval(cfg)
    assert r2["protocol"]["features_from_cache"] is False and r2["results"] == r1["results"]
    assert any("Ignoring the feature cache" in r.getMessage() for r in caplog.records)
    assert run_retrieval(cfg)["protocol"]["features_from_cache"] is True  # rewritten whole
