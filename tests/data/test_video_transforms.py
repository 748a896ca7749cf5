"""Clip augmentation: one draw per clip, independent clips, seeded, grayscale that works."""
import pytest
import torch
from torchvision import tv_tensors
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F
from reference_augment import (
    SeparableGaussianBlur,
    VideoRandomGrayscale,
    aug_settings,
    build_train_transform,
    create_train_transform,
)
from video_helpers import tiny_cfg

from ascnet.data.transforms import adjust_hue, build_eval_transform, spatial_crops


def random_clip(t=8, h=64, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("wrap", [lambda x: x, tv_tensors.Video])
def test_grayscale_makes_all_three_channels_equal_on_video(wrap):
    clip = wrap(random_clip())
    out = VideoRandomGrayscale(p=1.0)(clip)
    assert out.shape == clip.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert not torch.equal(out, clip.as_subclass(torch.Tensor))
    assert torch.equal(VideoRandomGrayscale(p=0.0)(clip), clip)


def test_torchvision_random_grayscale_ignores_videos():
    """Why VideoRandomGrayscale exists: v2.RandomGrayscale leaves a Video unchanged."""
    clip = tv_tensors.Video(random_clip())
    out = v2.RandomGrayscale(p=1.0)(clip)
    if torch.equal(out[:, 0], out[:, 1]):
        pytest.skip("this torchvision converts videos to grayscale itself")
    assert torch.equal(out, clip)


def test_train_transform_shapes_and_normalisation():
    cfg = tiny_cfg()
    out = build_train_transform(cfg)(random_clip(), seed=1)
    assert out.shape == (3, 8, 56, 56) and out.dtype == torch.float32
    # Normalised values: (x/255 - 0.45) / 0.225 lies in [-2, 2.45].
    assert out.min() >= -2.01 and out.max() <= 2.45
    # Float conversion, then the crop; colour ops see the cropped clip.
    ops = create_train_transform(crop_size=56).transforms
    assert isinstance(ops[0], v2.ToDtype) and isinstance(ops[1], v2.RandomResizedCrop)


def test_frames_of_a_clip_share_one_draw():
    # All frames equal in -> all frames equal out (one crop, flip, jitter, blur for the clip).
    frame = random_clip(t=1)
    clip = frame.expand(8, -1, -1, -1).contiguous()
    tf = build_train_transform(tiny_cfg())
    for seed in range(10):
        out = tf(clip, seed=seed)
        assert all(torch.equal(out[:, 0], out[:, t]) for t in range(1, 8))


def test_seed_drives_the_draws_and_clips_are_independent():
    tf = build_train_transform(tiny_cfg())
    clip = random_clip()
    state = torch.get_rng_state()
    a, b = tf(clip, seed=7), tf(clip, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    c = tf(clip, seed=8)
    assert not torch.equal(a, c)


def test_eval_crops_are_deterministic_and_spread():
    cfg = tiny_cfg(TEST__NUM_SPATIAL_CROPS=3)
    tf = build_eval_transform(cfg)
    clip = random_clip(h=64, w=96)
    out = tf(clip)
    assert out.shape == (3, 3, 8, 56, 56) and torch.equal(out, tf(clip))
    assert not torch.equal(out[0], out[2])
    # Crop positions along the long side: left, centre, right.
    x = torch.arange(100).view(1, 1, 1, 100).expand(1, 3, 20, 100)
    crops = spatial_crops(x, 20, 3)
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 40, 80]
    assert int(spatial_crops(x, 20, 1)[0][0, 0, 0, 0]) == 40


def test_aug_disabled_is_a_deterministic_centre_crop():
    cfg = tiny_cfg(AUG__ENABLE=False)
    tf = build_train_transform(cfg)
    clip = random_clip()
    assert torch.equal(tf(clip, seed=1), tf(clip, seed=2))


def test_fast_hue_and_blur_match_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 20, 24, generator=g)
    x[0, :, :4] = 0.5  # gray pixels (zero chroma)
    x[1, 0] = x[1, 1]  # ties between channels
    for h in (-0.5, -0.23, 0.0, 0.1, 0.49):
        assert torch.allclose(adjust_hue(x, h), F.adjust_hue(x, h), atol=1e-5)
    for sigma in (0.3, 1.0, 2.0):
        ours = SeparableGaussianBlur(11, aug_settings()["blur_sigma"]).blur(x, sigma)
        assert torch.allclose(ours, F.gaussian_blur(x, [11, 11], [sigma, sigma]), atol=1e-5)
