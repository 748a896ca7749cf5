"""Something-Something v2 official layout: JSON labels with templates, 12 fps VP9 WebM videos."""
import json
import logging
import os

import pytest
from video_helpers import augmented, read_index, tiny_cfg, write_webm

from ascnet.data import build_dataset
from ascnet.data.decoder import probe_video
from ascnet.data.datasets.ssv2 import template_class
from ascnet.sampling.clip import VideoTooShortError

LABELS = {  # template -> id, as something-something-v2-labels.json spells them (no brackets)
    "Pushing something from left to right": "2",
    "Pushing something from right to left": "0",
    "Putting something next to something": "1",
}
TRAIN = [
    {"id": "101", "label": "pushing pen from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["pen"]},
    {"id": "102", "label": "putting cup next to box", "template": "Putting [something] next to [something]",
     "placeholders": ["cup", "box"]},
    {"id": "103", "label": "pushing pen from right to left", "template": "Pushing [something] from right to left",
     "placeholders": ["pen"]},
]
VALIDATION = [
    {"id": "201", "label": "pushing a car from right to left", "template": "Pushing [something] from right to left",
     "placeholders": ["a car"]},
    {"id": "202", "label": "putting pen next to mug", "template": "Putting [something] next to [something]",
     "placeholders": ["pen", "mug"]},
]


def make_ssv2(root, labels_dir="", frames=(40, 36, 30, 34, 28)):
    ann = os.path.join(root, labels_dir)
    os.makedirs(ann, exist_ok=True)
    for name, data in (("labels", LABELS), ("train", TRAIN), ("validation", VALIDATION), ("test", [{"id": "301"}])):
        with open(os.path.join(ann, f"something-something-v2-{name}.json"), "w") as f:
            json.dump(data, f)
    for k, (entry, n) in enumerate(zip(TRAIN + VALIDATION, frames)):
        write_webm(os.path.join(root, "20bn-something-something-v2", f"{entry['id']}.webm"), n, offset=k * 50)
    return root


@pytest.mark.parametrize("labels_dir", ["", "labels"])
def test_ssv2_labels_splits_and_samples(tmp_path, labels_dir):
    root = make_ssv2(str(tmp_path), labels_dir)
    cfg = tiny_cfg(root, DATA__CROP_SIZE=32, DATA__TEST_CROP_SIZE=32, AUG__FLIP_PROB=0.0)
    train = build_dataset(cfg, "train", "train", name="SSv2")
    test = build_dataset(cfg, "test", "test", name="SSv2")  # the validation JSON (test has no labels)
    assert train.class_names == [
        "Pushing something from right to left", "Putting something next to something",
        "Pushing something from left to right",
    ]
    assert train.labels == [2, 1, 0] and test.labels == [0, 1]
    assert [os.path.basename(p) for p in train.paths + test.paths] == ["101.webm", "102.webm", "103.webm",
                                                                     "201.webm", "202.webm"]
    assert build_dataset(cfg, "val", "test", name="SSv2").paths == test.paths
    # WebM stores no frame count: the estimate from the duration matches the frames written.
    assert [probe_video(p).num_frames for p in train.paths + test.paths] == [40, 36, 30, 34, 28]
    # One source per video.
    assert list(train.sources) == [0, 1, 2] and list(test.sources) == [0, 1]
    s = train[(0, 3)]
    assert augmented(train, s).shape == (3, 8, 32, 32) and s["label"] == 2 and s["source"] == 0
    t = test[1]
    assert t["clips"].shape == (6, 3, 8, 32, 32) and t["label"] == 1 and t["source"] == 1


def test_a_transcoded_copy_is_found_by_id_and_webm_wins(tmp_path):
    """A copy in another container (tools/prepare_dataset.py writes <id>.mkv) is found by the
    video's id; where both exist the WebM is used; an id with no file keeps its .webm path."""
    import shutil

    root = make_ssv2(str(tmp_path))
    videos = os.path.join(root, "20bn-something-something-v2")
    os.rename(os.path.join(videos, "101.webm"), os.path.join(videos, "101.mkv"))
    shutil.copy(os.path.join(videos, "102.webm"), os.path.join(videos, "102.mp4"))
    os.remove(os.path.join(videos, "103.webm"))
    cfg = tiny_cfg(root, DATA__CROP_SIZE=32, DATA__TEST_CROP_SIZE=32, AUG__FLIP_PROB=0.0)
    train = build_dataset(cfg, "train", "train", name="SSv2")
    assert [os.path.basename(p) for p in train.paths] == ["101.mkv", "102.webm", "103.webm"]
    assert augmented(train, train.load(0, 0)).shape == (3, 8, 32, 32)


def test_template_brackets_and_unknown_templates(tmp_path):
    assert template_class("Putting [something] next to [something]") == "Putting something next to something"
    root = make_ssv2(str(tmp_path))
    with open(os.path.join(root, "something-something-v2-train.json"), "w") as f:
        json.dump(TRAIN + [{"id": "104", "template": "Spinning [something] so it continues spinning"}], f)
    with pytest.raises(ValueError, match=r"train\.json.* entry 3 \(video 104\).*Spinning.*labels\.json"):
        build_dataset(tiny_cfg(root), "train", "train", name="SSv2")
    os.remove(os.path.join(root, "something-something-v2-labels.json"))
    with pytest.raises(FileNotFoundError, match="something-something-v2-labels.json"):
        build_dataset(tiny_cfg(root), "train", "train", name="SSv2")


def test_12fps_clips_hold_distinct_frames_and_short_videos_follow_the_policy(tmp_path):
    """TARGET_FPS 25 does not repeat frames of 12 fps video; a 2x clip on a 30-frame video."""
    root = make_ssv2(str(tmp_path))
    cfg = tiny_cfg(root, DATA__TARGET_FPS=25, DATA__NUM_FRAMES=16, DATA__CROP_SIZE=32, AUG__ENABLE=False,
                   DATA__MEAN=[0.0] * 3, DATA__STD=[1.0] * 3, DATA__SPEEDS=[1, 2], AUG__LOAD_SIZE=32)
    ds = build_dataset(cfg, "train", "pretrain", name="SSv2")
    clips = augmented(ds, ds[(0, 0)])  # 40 frames: both clips fit (the 2x clip needs 31)
    idx = [[read_index((clips[s, :, t] * 255).round().byte().numpy()) for t in range(16)] for s in range(2)]
    assert [b - a for a, b in zip(idx[0], idx[0][1:])] == [1] * 15
    assert [b - a for a, b in zip(idx[1], idx[1][1:])] == [2] * 15
    # Video 103 has 30 frames, one short of the 2x clip: "fail" refuses it, "clamp" repeats its end.
    with pytest.raises(VideoTooShortError):
        ds.load(2, 0)
    cfg.DATA.SHORT_VIDEO_POLICY = "clamp"
    ds = build_dataset(cfg, "train", "pretrain", name="SSv2")
    clips = augmented(ds, ds[(2, 0)])
    fast = [read_index((clips[1, :, t] * 255).round().byte().numpy()) - 100 for t in range(16)]
    assert fast == list(range(0, 30, 2)) + [29]


def test_flips_on_ssv2_warn(tmp_path, caplog):
    root = make_ssv2(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="ascnet.data.datasets.ssv2"):
        build_dataset(tiny_cfg(root, AUG__FLIP_PROB=0.5), "train", "train", name="SSv2")
    assert "FLIP_PROB" in caplog.text and "left to right" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ascnet.data.datasets.ssv2"):
        build_dataset(tiny_cfg(root, AUG__FLIP_PROB=0.0), "train", "train", name="SSv2")
        build_dataset(tiny_cfg(root, AUG__FLIP_PROB=0.5), "test", "test", name="SSv2")
    assert "FLIP_PROB" not in caplog.text


@pytest.mark.parametrize("name", ["Base_finetune", "ASCNet_R3D18_finetune", "ASCNet_R3D18_linear",
                                  "ASCNet_R3D18_retrieval"])
def test_ssv2_configs_load_without_flips(repo_root, name):
    from ascnet.config import load_config

    cfg = load_config(os.path.join(repo_root, "configs", "SSv2", f"{name}.yaml"))
    assert cfg.AUG.FLIP_PROB == 0 and cfg.TRAIN.DATASET == cfg.TEST.DATASET == "SSv2"
    assert cfg.MODEL.NUM_CLASSES == 174 and cfg.DATA.TARGET_FPS == 12 and cfg.DATA.SHORT_VIDEO_POLICY == "clamp"
