"""Bad videos: a corrupt and a missing file do not stop an epoch; too many stop the run."""
import os

import pytest
import torch
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import build_dataset, build_loader
from ascnet.data.datasets import DataFailureError
from ascnet.data.decoder import VideoDecodeError


def make_list_dataset(root, good=8):
    names = []
    for k in range(good):
        write_index_video(os.path.join(root, "v", f"good{k}.avi"), 16, offset=k)
        names.append(f"v/good{k}.avi")
    with open(os.path.join(root, "v", "corrupt.avi"), "wb") as f:
        f.write(b"RIFF" + os.urandom(3000))
    names[3:3] = ["v/corrupt.avi"]
    names.append("v/missing.avi")
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.writelines(f"{n} {k % 2}\n" for k, n in enumerate(names))
    return root


def test_bad_videos_do_not_stop_an_epoch_and_are_reported(tmp_path, caplog):
    root = make_list_dataset(str(tmp_path))
    cfg = tiny_cfg(root, TRAIN__DATASET="Kinetics", TRAIN__BATCH_SIZE=2, DATA_LOADER__NUM_WORKERS=2)
    loader = build_loader(cfg, "train", "pretrain", drop_last=False)
    ds = loader.dataset
    seen = []
    for batch in loader:
        clips = augmented(ds, batch)
        assert clips.shape[1:] == (2, 3, 8, 56, 56) and torch.isfinite(clips).all()
        seen += batch["index"].tolist()
    assert len(seen) == 10
    bad = {3, 9}  # corrupt.avi, missing.avi
    assert not bad & set(seen)  # replaced by good videos
    stats = ds.failure_stats()  # counted across the two workers
    assert stats["failures"] >= 2 and stats["bad_videos"] == 2 and stats["loads"] >= 10
    assert sorted(os.path.basename(p) for p in stats["bad_paths"]) == ["corrupt.avi", "missing.avi"]


def test_replacement_is_deterministic_from_the_seed(tmp_path):
    root = make_list_dataset(str(tmp_path))
    ds = build_dataset(tiny_cfg(root), "train", "train", name="Kinetics")
    a, b = ds[(9, 1234)], ds[(9, 1234)]
    assert a["index"] != 9 and a["index"] == b["index"] and torch.equal(a["clips"], b["clips"])
    assert a["label"] == ds.labels[a["index"]]


def test_too_many_failures_stop_with_the_bad_paths(tmp_path):
    root = make_list_dataset(str(tmp_path), good=3)
    cfg = tiny_cfg(root, DATA__MAX_FAILURE_RATIO=0.1, DATA__FAILURE_MIN_ATTEMPTS=4)
    ds = build_dataset(cfg, "train", "train", name="Kinetics")
    with pytest.raises(DataFailureError, match="corrupt.avi") as err:
        for i in range(len(ds)):
            ds[(i, i)]
    assert "MAX_FAILURE_RATIO" in str(err.value)


def test_test_mode_refuses_bad_videos(tmp_path):
    root = make_list_dataset(str(tmp_path))
    ds = build_dataset(tiny_cfg(root), "train", "test", name="Kinetics")
    assert ds[0]["clips"].shape == (6, 3, 8, 56, 56)
    for _ in range(2):  # also once the video is known to be bad: never replaced in test mode
        with pytest.raises(VideoDecodeError, match="check_dataset"):
            ds[3]

