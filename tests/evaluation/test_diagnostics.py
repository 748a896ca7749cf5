"""Motion diagnostics on constructed inputs: features that ignore time, features that encode
frame order, features that encode playback speed and features that do not."""
import pytest
import torch

from ascnet.evaluation.diagnostics import (
    factor_top1,
    format_diagnostics,
    perturb_time,
    speed_clips,
    speed_probe,
    static_bias_probe,
)
from ascnet.evaluation.retrieval import extract_video_features

T = 8


class RampVideos(torch.utils.data.Dataset):
    """Float views (V, 1, T, 4, 4): brightness ramping up (class 0) or down (class 1) from a
    per-video level, so that the class is in the frame order and not in any single frame."""

    def __init__(self, n, seed, views=2, frames=T):
        g = torch.Generator().manual_seed(seed)
        self.levels = torch.rand(n, generator=g)
        self.labels = torch.arange(n) % 2
        self.views, self.frames = views, frames

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        ramp = torch.linspace(0, 1, self.frames) * (1 if self.labels[i] == 0 else -1)
        x = (self.levels[i] + 0.3 * ramp).view(1, 1, self.frames, 1, 1).expand(self.views, 1, self.frames, 4, 4)
        return {"clips": x.clone(), "index": i, "label": int(self.labels[i])}


class OrderFeatures(torch.nn.Module):
    """(N, 1, T, H, W) -> the T-1 frame-to-frame brightness changes: encodes frame order."""

    def forward(self, x):
        m = x.mean(dim=(1, 3, 4))
        return m[:, 1:] - m[:, :-1]


class TimelessFeatures(torch.nn.Module):
    """(N, 1, T, H, W) -> the sorted frame brightnesses: blind to the order of frames."""

    def forward(self, x):
        return x.mean(dim=(1, 3, 4)).sort(dim=1).values


def _probe(encoder):
    query, gallery = RampVideos(20, seed=0), RampVideos(30, seed=1)
    qf, ql = extract_video_features(encoder, query, batch_size=4)
    gf, gl = extract_video_features(encoder, gallery, batch_size=4)
    return static_bias_probe(encoder, query, qf, gf, ql, gl, center=False, knn_ks=(5,), batch_size=3, seed=0)


def test_perturb_time_shuffles_each_view_and_repeats_the_middle_frame():
    clips = torch.arange(T, dtype=torch.float32).view(1, 1, 1, T, 1, 1).expand(3, 2, 1, T, 2, 2).contiguous()
    index = torch.tensor([0, 1, 2])
    shuffled = perturb_time(clips, "shuffle", index, seed=0)
    for n in range(3):
        for v in range(2):
            order = shuffled[n, v, 0, :, 0, 0]
            assert sorted(order.tolist()) == list(range(T)) and order.tolist() != list(range(T))
    assert torch.equal(shuffled, perturb_time(clips, "shuffle", index, seed=0))  # a function of (seed, index)
    assert not torch.equal(shuffled, perturb_time(clips, "shuffle", index, seed=1))
    assert torch.equal(perturb_time(clips[1:], "shuffle", index[1:], seed=0), shuffled[1:])  # not of batch position
    assert (perturb_time(clips, "repeat", index) == T // 2).all()
    with pytest.raises(ValueError, match="shuffle"):
        perturb_time(clips, "reverse", index)


def test_features_blind_to_time_show_no_shuffle_drop():
    res = _probe(TimelessFeatures())
    assert res["shuffle_drop_top1"] == 0.0 and res["shuffle_drop_knn5_top1"] == 0.0


def test_features_that_encode_frame_order_drop_when_frames_are_shuffled_or_frozen():
    res = _probe(OrderFeatures())
    clean = res["shuffle_top1"] + res["shuffle_drop_top1"]
    assert clean == 100.0  # the order of frames tells the class exactly
    assert res["shuffle_drop_top1"] >= 20.0 and res["repeat_drop_top1"] >= 20.0
    assert res["shuffle_drop_knn5_top1"] > 0.0
    text = format_diagnostics(res, knn_k=5)
    assert "shuffled" in text and "repeated" in text and f"{res['shuffle_top1']:.1f}" in text


def _speed_feats(n, speeds, encoder, seed):
    """Views of 16 frames of brightness changing at a per-video rate in [0.04, 0.08] per frame
    from a per-video level, cut into 8-frame clips at each speed."""
    g = torch.Generator().manual_seed(seed)
    level, rate = torch.rand(n, 2, 1, 1, generator=g), 0.04 + 0.04 * torch.rand(n, 2, 1, 1, generator=g)
    x = (level + rate * torch.arange(16.0)).view(n, 2, 1, 16, 1, 1).expand(n, 2, 1, 16, 2, 2)
    clips = speed_clips(x, speeds, 8)  # (N, S, V, 1, 8, 2, 2)
    assert clips.shape == (n, len(speeds), 2, 1, 8, 2, 2)
    flat = clips.flatten(0, 2)
    return torch.nn.functional.normalize(encoder(flat), dim=-1).view(n, len(speeds), 2, -1)


def test_speed_clips_keep_every_s_th_frame():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16, 1, 1)
    c = speed_clips(x, [1, 2], 8)
    assert c[0, 0, 0, 0, :, 0, 0].tolist() == list(range(8))
    assert c[0, 1, 0, 0, :, 0, 0].tolist() == list(range(0, 16, 2))
    with pytest.raises(ValueError, match="16 frames"):
        speed_clips(x[:, :, :, :10], [1, 2], 8)


def test_speed_probe_reads_speed_from_features_that_encode_it_and_not_from_others():
    speeds = [1, 2]

    def motion_energy(x):  # mean absolute frame difference: doubles with the playback speed
        d = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4))
        return torch.stack([d, torch.ones_like(d)], dim=1)

    def brightness(x):  # the first frame's level: the same at every speed
        return torch.stack([x[:, 0, 0].mean(dim=(1, 2)), torch.ones(len(x))], dim=1)

    good = speed_probe(_speed_feats(60, speeds, motion_energy, 0), _speed_feats(40, speeds, motion_energy, 1))
    blind = speed_probe(_speed_feats(60, speeds, brightness, 0), _speed_feats(40, speeds, brightness, 1))
    assert good["speed_probe_chance"] == 50.0 and good["speed_probe_top1"] >= 95.0
    assert blind["speed_probe_top1"] == 50.0  # identical features at both speeds: one answer for both


def test_factor_top1_scores_each_factor_of_the_nearest_video():
    factors = {"direction": (("Right", "Left"), (0, 0, 1, 1)), "speed": (("Slow", "Fast"), (0, 1, 0, 1))}
    gl = torch.tensor([0, 1, 2, 3])
    ql = torch.tensor([0, 1, 2, 3])
    nbrs = torch.tensor([[1], [1], [0], [3]])  # right direction, right, wrong, right; speed: wrong, right, right, right
    res = factor_top1(nbrs, ql, gl, factors)
    assert res["factor_direction_top1"] == 75.0 and res["factor_speed_top1"] == 75.0
    assert res["factor_direction_chance"] == 50.0 and res["factor_speed_chance"] == 50.0
    assert "per factor: nearest training video has the query's direction: 75.0 (chance 50.0)" in format_diagnostics(res)
