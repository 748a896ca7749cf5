"""The generated motion dataset: real files, UCF-101 layout, deterministic, generated once."""
import multiprocessing as mp
import os

import numpy as np
import pytest
import torch
from video_helpers import tiny_cfg

from ascnet.data import build_dataset
from ascnet.data.decoder import decode_all
from ascnet.data.synthetic import MARKER, SyntheticSpec, ensure_synthetic_dataset
from ascnet.data.synthetic_render import MOTIONS, _trajectory, render_video

SMALL = dict(num_classes=3, videos_per_class=4, num_frames=16, size=32)


def _ensure(root, q):
    q.put(ensure_synthetic_dataset(root, SyntheticSpec(**SMALL), progress=False))


def test_layout_labels_and_split_membership(tmp_path):
    root = str(tmp_path / "syn")
    assert ensure_synthetic_dataset(root, SyntheticSpec(**SMALL, format=".mp4"), progress=False)
    lists = os.path.join(root, "ucfTrainTestlist")
    assert sorted(os.listdir(lists)) == sorted(
        ["classInd.txt"] + [f"{k}list0{s}.txt" for k in ("train", "test") for s in (1, 2, 3)]
    )
    assert open(os.path.join(lists, "classInd.txt")).read().split() == ["1", MOTIONS[0], "2", MOTIONS[1], "3", MOTIONS[2]]
    files = sorted(os.listdir(os.path.join(root, "UCF-101", MOTIONS[0])))
    assert len(files) == 4 and all(f.endswith(".mp4") and f.startswith(f"v_{MOTIONS[0]}_g") for f in files)
    for sid in (1, 2, 3):
        cfg = tiny_cfg(root, TRAIN__DATASET="Synthetic", DATA__SPLIT_ID=sid, DATA__SYNTHETIC__NUM_CLASSES=3,
                       DATA__SYNTHETIC__VIDEOS_PER_CLASS=4, DATA__SYNTHETIC__NUM_FRAMES=16,
                       DATA__SYNTHETIC__SIZE=32, DATA__SYNTHETIC__FORMAT=".mp4")
        train = build_dataset(cfg, "train", "train")
        test = build_dataset(cfg, "test", "test", name="Synthetic")
        assert len(train) + len(test) == 12 and not set(train.paths) & set(test.paths)
        assert np.bincount(test.labels).tolist() == [len(test) // 3] * 3
        assert train.num_classes == 3
        # Every generated video is rendered on its own: one source each, even within a group.
        assert len(set(train.sources)) == len(train) and len(set(test.sources)) == len(test)
        assert train.source_of("r/v_a_g01_c01.avi") != train.source_of("r/v_a_g01_c02.avi")
    frames, info = decode_all(train.paths[0])
    assert frames.shape == (16, 3, 32, 32) and info.fps == 25


def test_same_seed_same_frames_other_seed_other_frames(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    ensure_synthetic_dataset(a, SyntheticSpec(**SMALL, seed=1), progress=False)
    ensure_synthetic_dataset(b, SyntheticSpec(**SMALL, seed=1), progress=False)
    ensure_synthetic_dataset(c, SyntheticSpec(**SMALL, seed=2), progress=False)
    rel = os.path.join("UCF-101", MOTIONS[1], sorted(os.listdir(os.path.join(a, "UCF-101", MOTIONS[1])))[0])
    fa, fb, fc = (decode_all(os.path.join(r, rel))[0] for r in (a, b, c))
    assert torch.equal(fa, fb)
    assert not torch.equal(fa, fc)


def test_classes_are_motions_with_flip_invariant_directions():
    t = np.arange(48, dtype=np.float64)
    speeds = {}
    for m in ("HorizontalSlow", "HorizontalFast"):
        tr = _trajectory(m, np.random.default_rng(0), t)
        assert np.ptp(tr["cy"]) == 0 and np.ptp(tr["cx"]) > 0  # moves along x only
        speeds[m] = np.median(np.abs(np.diff(tr["cx"])))
    assert speeds["HorizontalFast"] == pytest.approx(3 * speeds["HorizontalSlow"])
    signs = {np.sign(_trajectory("HorizontalSlow", np.random.default_rng(k), t[:2])["cx"][1]
                     - _trajectory("HorizontalSlow", np.random.default_rng(k), t[:2])["cx"][0]) for k in range(20)}
    assert signs == {-1.0, 1.0}  # both directions in one class: a horizontal flip keeps the class
    # The first frame alone does not tell slow from fast: same content/background draw per video.
    v_slow = render_video(0, seed=0, index=0, num_frames=4, size=32)
    assert v_slow.shape == (4, 32, 32, 3) and v_slow.dtype == np.uint8
    assert not np.array_equal(v_slow[0], v_slow[3])  # it moves


def test_generated_once_under_concurrency_and_regenerated_when_half_written(tmp_path):
    root = str(tmp_path / "syn")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ensure, args=(root, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(q.get() for _ in procs) == [False, True]
    # Half-written: no marker -> not taken as complete, regenerated.
    os.remove(os.path.join(root, MARKER))
    victim = os.path.join(root, "UCF-101", MOTIONS[0])
    os.remove(os.path.join(victim, sorted(os.listdir(victim))[0]))
    assert ensure_synthetic_dataset(root, SyntheticSpec(**SMALL), progress=False)
    assert len(os.listdir(victim)) == 4
    with pytest.raises(ValueError, match="other parameters"):
        ensure_synthetic_dataset(root, SyntheticSpec(**dict(SMALL, num_frames=20)), progress=False)
    with pytest.raises(FileNotFoundError, match="make_synthetic_dataset"):
        ensure_synthetic_dataset(str(tmp_path / "none"), SyntheticSpec(**SMALL), auto_generate=False)


def test_config_rejects_impossible_generated_datasets():
    from ascnet.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="DATA.SYNTHETIC.SIZE"):
        load_config(None, ["TRAIN.DATASET", "Synthetic", "DATA.SYNTHETIC.SIZE", "65"])
    with pytest.raises(ConfigError, match="DATA.SYNTHETIC.NUM_CLASSES"):
        load_config(None, ["TEST.DATASET", "Synthetic", "DATA.SYNTHETIC.NUM_CLASSES", "11"])
    with pytest.raises(ConfigError, match="SHORT_VIDEO_POLICY"):
        load_config(None, ["DATA.SHORT_VIDEO_POLICY", "pad"])


def test_fixed_appearance_shares_object_and_background_and_keeps_default_marker(tmp_path):
    # Default: appearance drawn per video, and the same frames as before the option existed.
    a, b = render_video(0, 0, 0, 4, 32), render_video(0, 0, 0, 4, 32, appearance="random")
    assert np.array_equal(a, b)
    # "fixed": two videos of different classes differ only where the object is.
    f, g = render_video(0, 0, 0, 4, 32, "fixed"), render_video(3, 0, 5, 4, 32, "fixed")
    assert not np.array_equal(f, g)
    same = (np.abs(f[0].astype(int) - g[0].astype(int)).sum(-1) < 6).mean()
    assert same > 0.6  # the shared background
    assert not np.array_equal(f[0], f[3])  # it still moves
    # The marker names the key only when it is not the default (older datasets stay valid).
    assert "appearance" not in SyntheticSpec(**SMALL).marker()
    assert SyntheticSpec(**SMALL, appearance="fixed").marker()["appearance"] == "fixed"
    with pytest.raises(ValueError, match="DATA.SYNTHETIC.APPEARANCE"):
        SyntheticSpec(**SMALL, appearance="class").check()


def _background_colours(prob, classes=3, videos=6):
    """(classes, videos, 3): the median colour of each video's first frame (mostly background)."""
    return np.array([[np.median(render_video(c, 0, i, 2, 32, "random", prob)[0].reshape(-1, 3), axis=0)
                      for i in range(videos)] for c in range(classes)]) / 255.0


def _within_over_across(colours):
    flat = colours.reshape(-1, 3)
    d = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    cls = np.repeat(np.arange(colours.shape[0]), colours.shape[1])
    same, off_diag = cls[:, None] == cls[None], ~np.eye(len(flat), dtype=bool)
    return d[same & off_diag].mean() / d[~same].mean()


def test_class_scene_prob_gives_each_class_its_typical_scene_and_keeps_per_video_appearance():
    # Independent of the class (0, the default): videos of one class are as far apart in colour
    # as videos of different classes, and the frames are those of the plain "random" renderer.
    assert np.array_equal(render_video(2, 0, 1, 4, 32, "random", 0.0), render_video(2, 0, 1, 4, 32))
    assert _within_over_across(_background_colours(0.0)) > 0.7
    # Always the class's typical scene (1): videos of one class share its look ...
    typical = _background_colours(1.0)
    assert _within_over_across(typical) < 0.6
    # ... but no two videos are the same: colours, object, position and motion are per video.
    frames = [render_video(0, 0, i, 2, 32, "random", 1.0)[0] for i in range(6)]
    assert all(not np.array_equal(frames[i], frames[j]) for i in range(6) for j in range(i + 1, 6))
    assert np.abs(np.diff(typical, axis=1)).max() > 0.02
    # The key is in the marker only when set (a dataset of another value is not reused), and checked.
    assert "class_scene_prob" not in SyntheticSpec(**SMALL).marker()
    assert SyntheticSpec(**SMALL, class_scene_prob=0.75).marker()["class_scene_prob"] == 0.75
    with pytest.raises(ValueError, match="DATA.SYNTHETIC.CLASS_SCENE_PROB"):
        SyntheticSpec(**SMALL, class_scene_prob=1.5).check()


def _tree_bytes(root):
    """Every file under ``root`` (relative path -> bytes), and every folder."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs:
            out[os.path.relpath(os.path.join(d, n), root)] = None
        for n in files:
            with open(os.path.join(d, n), "rb") as f:
                out[os.path.relpath(os.path.join(d, n), root)] = f.read()
    return out


def test_generator_refuses_a_folder_holding_a_real_dataset_and_leaves_it_byte_identical(tmp_path):
    """Issue 22, item 1: TEST.DATASET Synthetic on a real UCF-101 folder overwrote its split lists."""
    from ascnet.data.utils import AnnotationError

    root = tmp_path / "ucf101"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    (root / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    (root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi").write_bytes(b"\x00real video\x01")
    before = _tree_bytes(root)
    cfg = tiny_cfg(str(root), TEST__DATASET="Synthetic", DATA__SYNTHETIC__NUM_CLASSES=3,
                   DATA__SYNTHETIC__VIDEOS_PER_CLASS=4, DATA__SYNTHETIC__NUM_FRAMES=16, DATA__SYNTHETIC__SIZE=32)
    with pytest.raises(AnnotationError, match="holds other data") as e:
        build_dataset(cfg, "test", "test", name="Synthetic")
    assert str(root) in str(e.value) and "\n" not in str(e.value)
    assert _tree_bytes(root) == before
    # Empty folders, and trees the generator started (its lock file), are still generated into.
    (tmp_path / "empty").mkdir()
    assert ensure_synthetic_dataset(str(tmp_path / "empty"), SyntheticSpec(**SMALL), progress=False)
    with pytest.raises(AnnotationError, match="is a file"):
        ensure_synthetic_dataset(str(root / "ucfTrainTestlist" / "classInd.txt"), SyntheticSpec(**SMALL), progress=False)
    assert _tree_bytes(root) == before


def test_make_synthetic_dataset_tool_refuses_a_real_dataset_folder(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "real"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    r = subprocess.run(
        [sys.executable, "tools/make_synthetic_dataset.py", "--out", str(root), "--num-classes", "2"],
        capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(root) in r.stderr
    assert sorted(os.listdir(root)) == ["notes.txt"]


def test_motion_types_frames_unchanged_by_the_preset_key():
    # The digest of frames rendered before DATA.SYNTHETIC.PRESET existed (all 10 classes, the
    # three appearance settings): datasets of the default preset stay byte-identical.
    import hashlib

    h = hashlib.sha256()
    for c in range(10):
        for i in range(2):
            h.update(render_video(c, 0, i, 8, 32).tobytes())
            h.update(render_video(c, 1, i, 8, 32, "fixed").tobytes())
            h.update(render_video(c, 0, i, 8, 32, "random", 0.75, preset="motion_types").tobytes())
    assert h.hexdigest() == "b18faf464aa1f79c609d2ff65f12936073774ad99e75aab7819e62df905ee7cf"


def _centroid_x_y(layer):
    """Per-frame alpha centroid (x, y) in pixels on the torus of the frame (wrap-around safe)."""
    a = layer[:, 3]
    size = a.shape[-1]
    ang = torch.arange(size, dtype=torch.float64) * 2 * np.pi / size
    out = []
    for axis in (2, 1):  # x: over columns, y: over rows
        w = a.double().sum(dim=3 - axis)  # (T, size)
        z = (w * torch.cos(ang)).sum(1) + 1j * (w * torch.sin(ang)).sum(1)
        out.append(np.unwrap(np.angle(z.numpy())) * size / (2 * np.pi))
    return out


def test_direction_speed_preset_moves_the_digit_in_its_direction_at_its_speed():
    from ascnet.data.synthetic_render import PRESETS, _direction_speed_layer, _object, class_factors

    names = PRESETS["direction_speed"]
    assert names == ("RightSlow", "RightFast", "LeftSlow", "LeftFast", "DownSlow", "DownFast", "UpSlow", "UpFast")
    factors = class_factors("direction_speed", 8)
    assert factors["direction"] == (("Right", "Left", "Down", "Up"), (0, 0, 1, 1, 2, 2, 3, 3))
    assert factors["speed"] == (("Slow", "Fast"), (0, 1, 0, 1, 0, 1, 0, 1))
    assert class_factors("motion_types", 8) == {}
    size, frames = 64, 12
    obj = _object(np.random.default_rng(0), 0.0, kind=0)
    expected = {"Right": (1, 0), "Left": (-1, 0), "Down": (0, 1), "Up": (0, -1)}
    for name in names:
        layer = _direction_speed_layer(name, np.random.default_rng(3), obj, 0.35, frames, size)
        assert layer.shape == (frames, 4, size, size) and float(layer[:, 3].amax(dim=(1, 2)).min()) > 0.5  # always visible
        x, y = _centroid_x_y(layer)
        px = {"Slow": 0.025, "Fast": 0.0625}[name[-4:]] * size  # frame widths per frame -> pixels
        dx, dy = expected[name[:-4]]
        assert np.allclose(np.diff(x), dx * px, atol=0.35) and np.allclose(np.diff(y), dy * px, atol=0.35), name


def test_direction_speed_preset_appearance_does_not_tell_the_class(tmp_path):
    # The same video number of two classes shows other digits and backgrounds, and the frames
    # of every class are drawn from one distribution: the mean colour of first frames is as
    # spread within a class as across classes.
    means = np.stack([[render_video(c, 0, i, 2, 32, preset="direction_speed")[0].reshape(-1, 3).mean(0) for i in range(12)]
                      for c in range(8)]) / 255.0
    assert not np.array_equal(render_video(0, 0, 0, 2, 32, preset="direction_speed"), render_video(2, 0, 0, 2, 32, preset="direction_speed"))
    assert _within_over_across(means) > 0.8
    # Its own marker and folder; checked keys.
    spec = SyntheticSpec(**SMALL, preset="direction_speed")
    assert spec.marker()["preset"] == "direction_speed" and "preset" not in SyntheticSpec(**SMALL).marker()
    assert spec.classes == ["RightSlow", "RightFast", "LeftSlow"]
    with pytest.raises(ValueError, match="DATA.SYNTHETIC.PRESET"):
        SyntheticSpec(**SMALL, preset="directions").check()
    with pytest.raises(ValueError, match=r"NUM_CLASSES must be in \[1, 8\]"):
        SyntheticSpec(num_classes=9, preset="direction_speed").check()
    with pytest.raises(ValueError, match="CLASS_SCENE_PROB applies to PRESET motion_types only"):
        SyntheticSpec(**SMALL, preset="direction_speed", class_scene_prob=0.5).check()
    root = str(tmp_path / "ds")
    ensure_synthetic_dataset(root, spec, progress=False)
    assert sorted(os.listdir(os.path.join(root, "UCF-101"))) == sorted(spec.classes)
    with pytest.raises(ValueError, match="other parameters"):
        ensure_synthetic_dataset(root, SyntheticSpec(**SMALL), progress=False)


def _clip_shift(clips, reach=7):
    """Per-view displacement (dx, dy) in whole pixels per frame of what moves in float clips
    (V, C, T, H, W): the roll that best maps each frame difference onto the next one (a static
    background cancels in the differences; rolls wrap like the preset's digit)."""
    d = (clips[:, :, 1:] - clips[:, :, :-1]).abs().sum(1)  # (V, T-1, H, W)
    a, b = d[:, :-1], d[:, 1:]
    score = torch.stack([
        (torch.roll(a, (sy, sx), dims=(2, 3)) * b).sum((1, 2, 3))
        for sy in range(-reach, reach + 1) for sx in range(-reach, reach + 1)], 1)
    k = score.argmax(1)
    return (k % (2 * reach + 1) - reach).tolist(), (k // (2 * reach + 1) - reach).tolist()


def test_direction_speed_clips_show_their_labelled_direction_as_the_model_sees_them(tmp_path):
    # What the network gets (decoded files, clip sampler, random resized crop, normalisation;
    # training clips through the batched augmentation, test views through the evaluation's
    # normalisation) still moves in the labelled direction, fast classes faster than slow ones:
    # the measurement that put "nothing learns on direction_speed" on the model and recipe
    # rather than the data path (docs/benchmarks.md, "Motion benchmark").
    from video_helpers import augmented

    from ascnet.data.batch_augment import normalize_clips
    from ascnet.data.synthetic_render import PRESETS

    cfg = tiny_cfg(str(tmp_path / "ds"), TRAIN__DATASET="Synthetic", TEST__DATASET="Synthetic",
                   DATA__SYNTHETIC__PRESET="direction_speed", DATA__SYNTHETIC__NUM_CLASSES=8,
                   DATA__SYNTHETIC__VIDEOS_PER_CLASS=3, DATA__SYNTHETIC__NUM_FRAMES=16, DATA__SYNTHETIC__SIZE=64,
                   AUG__FLIP_PROB=0.0)
    expected = {"Right": (1, 0), "Left": (-1, 0), "Down": (0, 1), "Up": (0, -1)}
    names = PRESETS["direction_speed"]
    train = build_dataset(cfg, "train", "train")
    test = build_dataset(cfg, "test", "test", name="Synthetic")
    assert len(train) == 16 and len(test) == 8
    for ds in (train, test):
        speeds = {"Slow": [], "Fast": []}
        for i in range(len(ds)):
            sample = ds[(i, 0)]  # seeded: the same crops every run (a crop may miss the small digit)
            clips = augmented(ds, sample) if ds is train else normalize_clips(sample["clips"], ds.mean, ds.std)
            clips = clips.reshape(-1, *clips.shape[-4:])
            assert clips.shape[1:3] == (3, 8)
            name = names[int(sample["label"])]
            dx, dy = _clip_shift(clips)
            ex, ey = expected[name[:-4]]
            for x, y in zip(dx, dy):
                assert (np.sign(x), np.sign(y)) == (ex, ey), (name, dx, dy)  # direction as labelled
                speeds[name[-4:]].append(abs(x) + abs(y))
        assert np.mean(speeds["Fast"]) > 1.8 * np.mean(speeds["Slow"]) > 0, speeds
