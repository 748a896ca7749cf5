"""Batched augmentation: equal to the per-clip pipeline, same draws, same distribution."""
import math
import os

import pytest
import torch
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import build_dataset
from ascnet.data.batch_augment import (
    BatchAugment,
    ParamSampler,
    augment_batch,
    normalize_clips,
    resize_weights,
    resized_crop,
    stack_params,
)
from reference_augment import ClipTransform, aug_settings, create_train_transform

MEAN, STD = (0.45, 0.42, 0.40), (0.225, 0.23, 0.22)
SETTINGS = {
    "defaults": {},
    "every op": dict(color_jitter_prob=1.0, grayscale_prob=0.5, blur_prob=1.0, flip_prob=0.5),
    "some ops off": dict(color_jitter=(0.4, 0.0, 0.3, 0.0), grayscale_prob=0.0, blur_prob=0.0, flip_prob=0.0),
}


def _clips(n, t=4, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, 3, h, w), dtype=torch.uint8, generator=g)


def _compare(device, settings, n=24, crop=32, cpu_kernel=True):
    clips = _clips(n)
    seeds = [1000 + 7 * i for i in range(n)]
    ref_tf = ClipTransform(create_train_transform(crop_size=crop, mean=MEAN, std=STD, **settings))
    ref = torch.stack([ref_tf(c, s) for c, s in zip(clips, seeds)])  # (N, C, T, S, S)
    sampler = ParamSampler(**aug_settings(**settings))
    size = tuple(clips.shape[-2:])
    p = stack_params([sampler.draw(*size, s) for s in seeds], size, size)
    p = {k: v.to(device) for k, v in p.items()}
    aug = BatchAugment(crop, MEAN, STD, cpu_kernel=cpu_kernel).to(device)
    out = aug(clips.permute(0, 1, 3, 4, 2).to(device), p)  # uint8 (N, T, H, W, C), the loader's layout
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.device.type == torch.device(device).type
    return (out.cpu() - ref).abs().max().item(), p


@pytest.mark.parametrize("name", list(SETTINGS))
def test_batched_ops_equal_the_per_clip_pipeline_on_cpu(name):
    err, p = _compare("cpu", SETTINGS[name])
    assert err < 1e-4, f"max |batched - per-clip| = {err}"
    if name == "every op":  # the comparison covered every op
        assert p["jitter"].all() and p["blur"].all() and p["flip"].any() and p["gray"].any() and not p["gray"].all()


@pytest.mark.parametrize("name", list(SETTINGS))
def test_the_gpu_path_on_the_cpu_equals_the_per_clip_pipeline(name):
    """cpu_kernel False: the products and the masked ops a GPU runs, checked on the CPU."""
    err, _ = _compare("cpu", SETTINGS[name], cpu_kernel=False)
    assert err < 1e-4, f"max |batched (device path) - per-clip| = {err}"


@pytest.mark.parametrize("fractional", [False, True])
def test_the_device_path_makes_no_host_synchronisation(fractional):
    """No nonzero / any() / mask indexing / host read in BatchAugment's device path, every op drawn;
    the CPU path reads the boxes once (free on the CPU)."""
    from ascnet.utils.host_sync import HostSyncCounter

    n, size = 12, (40, 48)
    sampler = ParamSampler(**aug_settings(**SETTINGS["every op"]))
    loaded = (36, 44) if fractional else size
    p = stack_params([sampler.draw(*size, 50 + s) for s in range(n)], size, loaded)
    clips = _clips(n, h=loaded[0], w=loaded[1]).permute(0, 1, 3, 4, 2)
    outs = {}
    for cpu_kernel in (False, True):
        aug = BatchAugment(32, MEAN, STD, cpu_kernel=cpu_kernel)
        with HostSyncCounter() as syncs:
            outs[cpu_kernel] = aug(clips, p)
        assert syncs.total == (1 if cpu_kernel else 0), dict(syncs.counts)
    assert p["jitter"].any() and p["blur"].any() and p["gray"].any() and p["flip"].any()
    assert (outs[True] - outs[False]).abs().max() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the CPU case runs everywhere)")
def test_batched_ops_equal_the_per_clip_pipeline_on_cuda():
    err, _ = _compare("cuda", SETTINGS["every op"])
    assert err < 1e-4, f"max |batched on cuda - per-clip on cpu| = {err}"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_parameters_use_the_per_clip_pipelines_random_draws(name):
    """Same calls on torch's RNG: after one clip the global RNG is in the same state."""
    clip = _clips(1)[0]
    tf = create_train_transform(crop_size=32, **SETTINGS[name])
    sampler = ParamSampler(**aug_settings(**SETTINGS[name]))
    for seed in range(40):
        torch.manual_seed(seed)
        tf(clip)
        after_ref = torch.get_rng_state()
        torch.manual_seed(seed)
        sampler(clip.shape[-2], clip.shape[-1])
        assert torch.equal(torch.get_rng_state(), after_ref), f"seed {seed}: different RNG consumption"


def test_parameter_distribution_over_many_draws():
    h, w, n = 128, 170, 4000
    sampler = ParamSampler(**aug_settings())
    ps = [sampler.draw(h, w, seed) for seed in range(n)]
    p = stack_params(ps, (h, w), (h, w))
    tol = 4 * math.sqrt(0.25 / n)  # 4 sigma of a proportion
    for key, prob in (("flip", 0.5), ("jitter", 0.8), ("gray", 0.2), ("blur", 0.5)):
        rate = p[key].float().mean().item()
        assert abs(rate - prob) < tol, f"{key}: rate {rate:.3f}, expected {prob}"
    top, left, bh, bw = p["box"].unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    area = bh * bw / (h * w)
    assert area.min() >= 0.18 and area.max() <= 1.0 and 0.45 < area.mean() < 0.6  # scale (0.2, 1), clipped by the frame
    ratio = (bw / bh)[area < 0.5]  # away from the frame's limits, ratio spans (3/4, 4/3)
    assert ratio.min() > 0.72 and ratio.max() < 1.39 and ratio.min() < 0.8 and ratio.max() > 1.25
    j = p["jitter"]
    assert torch.equal(p["order"][j].sort(dim=1).values, torch.arange(4).expand(int(j.sum()), 4))
    f = p["factors"][j]
    for i, (lo, hi) in enumerate(((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))):
        assert f[:, i].min() >= lo and f[:, i].max() <= hi
        assert abs(f[:, i].mean().item() - (lo + hi) / 2) < 0.02 and f[:, i].max() - f[:, i].min() > 0.9 * (hi - lo)
    assert torch.equal(p["factors"][~j], torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(int((~j).sum()), 4))
    s = p["sigma"][p["blur"]]
    assert s.min() >= 0.1 and s.max() <= 2.0 and abs(s.mean().item() - 1.05) < 0.05
    assert (p["sigma"][~p["blur"]] == 0).all()
    # Clips of one sample (seeds 1 + k) are independent draws.
    assert ps[0]["box"] != ps[1]["box"]


def test_resize_weights_are_torchs_antialiased_filter():
    """Rows of the (S, H) matrices equal torch's interpolate on the cropped window."""
    x = torch.rand(1, 1, 50, 4, dtype=torch.float64)
    for start, length, out in ((0, 50, 20), (7, 31, 12), (5, 10, 23), (0, 3, 8)):
        ref = torch.nn.functional.interpolate(
            x[:, :, start : start + length], size=(out, 4), mode="bilinear", antialias=True, align_corners=False
        )[0, 0]
        m = resize_weights(torch.tensor([float(start)]), torch.tensor([float(length)]), 50, out)[0].double()
        assert torch.allclose(m @ x[0, 0], ref, atol=1e-6)
        assert torch.allclose(m.sum(1), torch.ones(out, dtype=torch.float64), atol=1e-6)


def _one_video_cfg(root, **kw):
    write_index_video(os.path.join(root, "v0.mp4"), 40)
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("v0.mp4 0\n")
    return tiny_cfg(root, DATA__SPEEDS=[1, 2], **kw)


def test_device_and_loader_modes_give_the_same_clips(tmp_path):
    dev = build_dataset(_one_video_cfg(str(tmp_path)), "train", "pretrain", name="Kinetics")
    loader = build_dataset(_one_video_cfg(str(tmp_path), AUG__DEVICE="loader"), "train", "pretrain", name="Kinetics")
    for seed in range(3):
        s = dev[(0, seed)]
        assert s["clips"].dtype == torch.uint8 and s["clips"].shape == (2, 8, 64, 64, 3)
        assert set(s["aug"]) >= {"box", "flip", "jitter", "order", "factors", "gray", "blur", "sigma"}
        assert s["aug"]["box"].shape == (2, 4)
        f = loader[(0, seed)]
        assert "aug" not in f and f["clips"].dtype == torch.float32
        assert torch.allclose(augmented(dev, s), f["clips"], atol=1e-5)


def test_frames_are_scaled_while_decoding_and_the_box_follows(tmp_path):
    """AUG.LOAD_SIZE 32 on 64 px videos: 32 px frames, boxes drawn on 64 px and halved."""
    cfg = _one_video_cfg(str(tmp_path), AUG__LOAD_SIZE=32, DATA__CROP_SIZE=28)
    ds = build_dataset(cfg, "train", "pretrain", name="Kinetics")
    full = build_dataset(_one_video_cfg(str(tmp_path), DATA__CROP_SIZE=28, AUG__LOAD_SIZE=64), "train", "pretrain",
                         name="Kinetics")
    s, ref = ds[(0, 5)], full[(0, 5)]
    assert s["clips"].shape == (2, 8, 32, 32, 3)
    assert torch.allclose(s["aug"]["box"] * 2, ref["aug"]["box"])
    assert torch.equal(s["aug"]["flip"], ref["aug"]["flip"]) and torch.equal(s["aug"]["factors"], ref["aug"]["factors"])
    # Same content: the scaled frames are close to a resize of the full frames.
    full_frames = ref["clips"][0].permute(0, 3, 1, 2).float()  # (T, C, 64, 64)
    small = torch.nn.functional.interpolate(full_frames, size=(32, 32), mode="bilinear", antialias=True)
    assert (small - s["clips"][0].permute(0, 3, 1, 2).float()).abs().mean() < 12


def test_augment_batch_normalises_test_views_and_refuses_float_batches():
    aug = BatchAugment(8, MEAN, STD)
    u8 = torch.randint(0, 256, (2, 3, 3, 4, 8, 8), dtype=torch.uint8)
    out = augment_batch({"clips": u8, "index": torch.arange(2)}, aug)["clips"]
    m, s = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    assert torch.allclose(out, (u8.float() / 255 - m) / s, atol=1e-6)
    assert torch.equal(normalize_clips(u8, MEAN, STD), out)
    # a float batch would train without augmentation: one line naming who made it
    from ascnet.data.utils import AnnotationError

    with pytest.raises(AnnotationError, match=r"^Dataset Mine returned torch.float32 clips of shape \(3, 4, 8, 8\)"):
        augment_batch({"clips": torch.randn(2, 3, 4, 8, 8)}, aug, source="Dataset Mine")


def test_the_dense_products_equal_the_per_clip_kernel():
    """The GPU form of the crop (batched products) against torch's kernel per clip, on the CPU."""
    x = _clips(6).permute(0, 2, 1, 3, 4).float() / 255
    box = torch.tensor([[0, 0, 40, 48], [3, 5, 20, 30], [10, 0, 30, 17], [0, 20, 9, 28], [1, 1, 38, 46], [7, 9, 12, 12]],
                       dtype=torch.float32)
    flip = torch.tensor([True, False, True, False, False, True])
    a = resized_crop(x, box, 32, flip=flip, dense=True)
    b = resized_crop(x, box, 32, flip=flip, dense=False)
    assert (a - b).abs().max() < 1e-5
    assert (resized_crop(x * 255, box, 32, flip=flip, dense=True, scale=1 / 255) - b).abs().max() < 1e-5
