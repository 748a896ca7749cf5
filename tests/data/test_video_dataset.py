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
                   DATA__SPEEDS=[1, 2])
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


def test_dataset_takes_its_clip_sampler_from_the_registry(tmp_path):
    # DATA.CLIP_SAMPLER.<MODE> names the sampler (the dataset picked one by if/elif on the
    # mode, so a plugin's sampler could never be selected).
    from ascnet.sampling import CLIP_SAMPLER_REGISTRY, POSITIVE_SAMPLER_REGISTRY
    from ascnet.sampling.clip import RandomClipSampler

    @CLIP_SAMPLER_REGISTRY.register()
    class FirstFramesSampler(RandomClipSampler):
        def __call__(self, num_frames, fps, generator=None):
            return [torch.arange(self.num_frames)]

    root = str(tmp_path)
    write_index_video(os.path.join(root, "v0.mp4"), 60)
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("v0.mp4 0\n")
    try:
        cfg = tiny_cfg(root, AUG__ENABLE=False, DATA__CROP_SIZE=64, DATA__MEAN=[0.0] * 3, DATA__STD=[1.0] * 3)
        cfg.DATA.CLIP_SAMPLER.TRAIN = "FirstFramesSampler"
        ds = build_dataset(cfg, "train", "train", name="Kinetics")
        assert type(ds.clip_sampler).__name__ == "FirstFramesSampler"
        for seed in range(3):
            clip = augmented(ds, ds[(0, seed)])  # (C, T, H, W)
            assert [read_index((clip[:, t] * 255).round().byte().numpy()) for t in range(8)] == list(range(8))
    finally:
        CLIP_SAMPLER_REGISTRY._obj_map.pop("FirstFramesSampler", None)
    # One registry per kind: clip samplers and SCP positive samplers have different signatures.
    assert "PlaybackSpeedSampler" in CLIP_SAMPLER_REGISTRY.names()
    assert "PlaybackSpeedSampler" not in POSITIVE_SAMPLER_REGISTRY.names()
    assert set(POSITIVE_SAMPLER_REGISTRY.names()) == {"appearance_retrieval", "random_same_speed"}
