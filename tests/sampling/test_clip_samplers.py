"""Clip samplers: strides per speed, independent random starts, deterministic multi-view."""
import pytest
import torch

from ascnet.config import get_cfg
from ascnet.sampling.build import build_clip_sampler
from ascnet.sampling.clip import (
    PlaybackSpeedSampler,
    RandomClipSampler,
    UniformMultiViewSampler,
    VideoTooShortError,
    resampled_length,
    to_native_indices,
)


def cfg_with(**kw):
    cfg = get_cfg()
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.TARGET_FPS = 0
    for k, v in kw.items():
        sec, name = k.split("__")
        cfg[sec][name] = v
    return cfg


def test_build_clip_sampler_names_the_registered_classes():
    cfg = cfg_with()
    assert isinstance(build_clip_sampler(cfg, "pretrain"), PlaybackSpeedSampler)
    assert isinstance(build_clip_sampler(cfg, "train"), RandomClipSampler)
    assert isinstance(build_clip_sampler(cfg, "test"), UniformMultiViewSampler)


def test_playback_speed_strides_and_seeded_starts():
    cfg = cfg_with(DATA__SAMPLING_RATE=2, DATA__SPEEDS=[1, 2, 4])
    s = PlaybackSpeedSampler(cfg, "pretrain")
    clips = s(200, 25.0, torch.Generator().manual_seed(0))
    assert [torch.diff(c).unique().tolist() for c in clips] == [[2], [4], [8]]
    assert all(len(c) == 8 and 0 <= int(c[0]) and int(c[-1]) < 200 for c in clips)
    again = s(200, 25.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(clips, again))
    starts = {tuple(int(c[0]) for c in s(200, 25.0, torch.Generator().manual_seed(k))) for k in range(20)}
    assert len(starts) > 10  # starts vary with the seed ...
    assert any(a != b for a, b, _ in starts)  # ... and independently per speed


def test_random_clip_sampler_is_one_clip_at_speed_one():
    clips = RandomClipSampler(cfg_with(), "train")(30, 30.0, torch.Generator().manual_seed(1))
    assert len(clips) == 1 and torch.diff(clips[0]).unique().tolist() == [1]


@pytest.mark.parametrize("num_frames,views", [(100, 4), (30, 3), (8, 2), (50, 1)])
def test_multi_view_is_deterministic_and_covers_the_video(num_frames, views):
    s = UniformMultiViewSampler(cfg_with(), "test", num_clips=views)
    a, b = s(num_frames, 25.0), s(num_frames, 25.0, torch.Generator().manual_seed(5))
    assert len(a) == views and all(torch.equal(x, y) for x, y in zip(a, b))
    starts = [int(c[0]) for c in a]
    assert starts == sorted(starts)
    if views > 1:
        assert starts[0] == 0 and int(a[-1][-1]) == num_frames - 1
    covered = set(torch.cat(a).tolist())
    gaps = max(starts[i + 1] - starts[i] for i in range(views - 1)) if views > 1 else 0
    if gaps <= 8:  # clips touch or overlap: every frame is covered
        assert covered == set(range(num_frames)) or views == 1


def test_multi_view_defaults_to_test_views_and_never_fails_on_short_videos():
    s = UniformMultiViewSampler(cfg_with(TEST__NUM_ENSEMBLE_VIEWS=3), "test")
    clips = s(5, 25.0)
    assert len(clips) == 3 and all(c.tolist() == [0, 1, 2, 3, 4, 4, 4, 4] for c in clips)


def test_short_video_fails_by_default():
    with pytest.raises(VideoTooShortError):
        PlaybackSpeedSampler(cfg_with(), "pretrain")(14, 25.0)  # speed 2 needs 15 frames
    assert len(PlaybackSpeedSampler(cfg_with(), "pretrain")(15, 25.0)) == 2


def test_resampling_maps_target_timeline_to_native_frames():
    assert resampled_length(100, 50.0, 25.0) == 50
    assert resampled_length(30, 30.0, 25.0) == 25
    assert resampled_length(30, 30.0, 0) == 30
    # 30 fps video at 25 fps: the frame shown at time k / 25.
    native = to_native_indices(torch.arange(6), 30.0, 25.0, 30)
    assert native.tolist() == [0, 1, 2, 3, 4, 6]
    cfg = cfg_with(DATA__TARGET_FPS=25)
    clips = PlaybackSpeedSampler(cfg, "pretrain")(300, 50.0, torch.Generator().manual_seed(0))
    assert [torch.diff(c).unique().tolist() for c in clips] == [[2], [4]]


def test_resampling_never_upsamples():
    """A target rate above the native one keeps the native timeline (no repeated frames)."""
    assert resampled_length(36, 12.0, 25.0) == 36 and resampled_length(36, 12.0, 12.0) == 36
    assert to_native_indices(torch.arange(5), 12.0, 25.0, 36).tolist() == [0, 1, 2, 3, 4]
    clips = PlaybackSpeedSampler(cfg_with(DATA__TARGET_FPS=25), "pretrain")(40, 12.0, torch.Generator().manual_seed(0))
    assert [torch.diff(c).unique().tolist() for c in clips] == [[1], [2]]
    # Downsampling is unchanged: 50 fps at 25 takes every second frame.
    assert to_native_indices(torch.arange(3), 50.0, 25.0, 100).tolist() == [0, 2, 4]
