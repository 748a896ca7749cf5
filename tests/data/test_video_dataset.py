"""VideoDataset end to end: what a sample holds in each mode."""
import os

import torch
from video_helpers import augmented, read_index, tiny_cfg, write_index_video

from ascnet.data import build_dataset


def test_pretrain_samples_carry_both_speeds_end_to_end(tmp_path):
    """Through the dataset (augmentation off, identity normalisation): speed 2 spans 2x the frames."""
    root = str(tmp_path)
    write_index_video(os.path.join(root, "v0.mp4"), 60)
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("v0.mp4 0\n")
    cfg = tiny_cfg(root, AUG__ENABLE=False, DATA__CROP_SIZE=64, DATA__MEAN=[0.0] * 3, DATA__STD=[1.0] * 3,
                   ASCNET__SPEEDS=[1, 2])
    ds = build_dataset(cfg, "train", "pretrain", name="Kinetics")
    for seed in range(3):
        clips = augmented(ds, ds[(0, seed)])  # (S, C, T, H, W)
        idx = [[read_index((clips[s, :, t] * 255).round().byte().numpy()) for t in range(8)] for s in range(2)]
        assert [b - a for a, b in zip(idx[0], idx[0][1:])] == [1] * 7
        assert [b - a for a, b in zip(idx[1], idx[1][1:])] == [2] * 7


def test_test_mode_views_follow_constructor_arguments(tmp_path):
    from ascnet.data.datasets import Kinetics

    root = str(tmp_path)
    write_index_video(os.path.join(root, "v0.avi"), 40)
    with open(os.path.join(root, "val.csv"), "w") as f:
        f.write("v0.avi 0\n")
    cfg = tiny_cfg(root, AUG__ENABLE=False, DATA__TEST_CROP_SIZE=64, DATA__TEST_SHORT_SIDE=64,
                   DATA__MEAN=[0.0] * 3, DATA__STD=[1.0] * 3)
    ds = Kinetics(cfg, "val", "test", num_clips=4, num_crops=1)
    assert ds[0]["clips"].dtype == torch.uint8  # normalised on the evaluation device
    clips = augmented(ds, ds[0])
    assert clips.shape == (4, 3, 8, 64, 64) and ds.num_views == 4
    starts = [read_index((clips[v, :, 0] * 255).round().byte().numpy()) for v in range(4)]
    assert starts == [0, 11, 21, 32]  # uniformly spaced, the last clip ends at frame 39
    assert torch.equal(augmented(ds, ds[0]), clips)
    default = build_dataset(cfg, "val", "test", name="Kinetics")
    assert default.num_views == cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
