"""tools/prepare_dataset.py on small generated trees: bad inputs, kill + resume, same loader."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ascnet.config import get_cfg
from ascnet.data import build_dataset
from ascnet.data.decoder import probe_video
from ascnet.data.synthetic import write_video

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location("prepare_dataset", os.path.join(REPO, "tools", "prepare_dataset.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["prepare_dataset"] = mod  # the process pool pickles its job function by module name
    spec.loader.exec_module(mod)
    return mod


def _frames(n, h, w, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:h, :w]
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])


def make_kinetics(root, n=4, frames=30, h=96, w=128, fps=30):
    """Official Kinetics layout, per-class folders; returns the clip stems."""
    rows, stems = [], []
    for k in range(n):
        label = ("abseiling", "zumba")[k % 2]
        stem = f"vid{k:07d}_{k:06d}_{k + 10:06d}"
        os.makedirs(os.path.join(root, "train", label), exist_ok=True)
        write_video(os.path.join(root, "train", label, stem + ".mp4"), _frames(frames, h, w, k), fps=fps)
        rows.append(f"{label},vid{k:07d},{k},{k + 10},train")
        stems.append(stem)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "train.csv"), "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n" + "\n".join(rows) + "\n")
    return stems


def make_ssv2(root, n=3, frames=30):
    """Something-Something v2 layout: JSON labels and splits, VP9 WebM videos at 12 fps."""
    labels = {"Pushing something from left to right": "0", "Pushing something from right to left": "1"}
    entries = [{"id": str(100 + k), "template": ("Pushing [something] from left to right",
                                                 "Pushing [something] from right to left")[k % 2]} for k in range(n)]
    for name, data in (("labels", labels), ("train", entries[:-1]), ("validation", entries[-1:])):
        with open(os.path.join(root, f"something-something-v2-{name}.json"), "w") as f:
            json.dump(data, f)
    for k, e in enumerate(entries):
        path = os.path.join(root, "20bn-something-something-v2", f"{e['id']}.webm")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_video(path, _frames(frames, 48, 64, k), fps=12, codec="libvpx-vp9", options={})


def _cfg(root):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = root
    cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE, cfg.DATA.TARGET_FPS = 4, 56, 0
    return cfg


def test_bad_inputs_are_named_and_good_videos_written(tmp_path, capsys):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    stems = make_kinetics(src, n=5)
    good = os.path.join(src, "train", "zumba", stems[1] + ".mp4")
    empty = os.path.join(src, "train", "abseiling", stems[0] + ".mp4")
    open(empty, "wb").close()  # zero bytes
    os.remove(os.path.join(src, "train", "abseiling", stems[2] + ".mp4"))
    big = os.path.join(src, "train", "abseiling", stems[2] + ".avi")  # AVI: readable when cut short
    write_video(big, _frames(120, 96, 128, 9), fps=30)
    data = open(big, "rb").read()
    open(big, "wb").write(data[: len(data) // 2])  # truncated
    os.remove(os.path.join(src, "train", "zumba", stems[3] + ".mp4"))  # annotated, missing
    rc = load_tool().main(["--dataset", "Kinetics", "--src", src, "--dst", dst, "--short-side", "48",
                           "--fps", "25", "--workers", "2", "--no-progress"])
    assert rc == 0
    report = json.load(open(os.path.join(dst, "prepare_report.json")))
    reasons = {os.path.basename(b["path"]).split(".")[0]: b["reason"] for b in report["bad"]}
    assert set(reasons) == {stems[0], stems[2], stems[3]}
    assert reasons[stems[0]].startswith("empty") and reasons[stems[2]].startswith("truncated")
    assert reasons[stems[3]].startswith("missing")
    err = capsys.readouterr().err
    assert all(s in err for s in (stems[0], stems[2], stems[3]))
    for s, label in ((stems[1], "zumba"), (stems[4], "abseiling")):
        out = os.path.join(dst, "train", label, s + ".mp4")
        info = probe_video(out)
        assert (info.height, info.width) == (48, 64) and abs(info.fps - 25) < 0.01
        assert abs(info.num_frames - 25) <= 1  # 30 frames at 30 fps -> 1 s at 25 fps
    assert probe_video(good).num_frames == 30
    with av_open(os.path.join(dst, "train", "zumba", stems[1] + ".mp4")) as c:
        assert not c.streams.audio and c.streams.video[0].codec_context.name in ("h264", "libx264")
    assert os.path.exists(os.path.join(dst, "annotations", "train.csv"))
    assert not [f for _, _, fs in os.walk(dst) for f in fs if ".part." in f]


def av_open(path):
    import av

    return av.open(path)


def test_killed_run_resumes_without_redoing_or_leaving_partial_files(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    stems = make_kinetics(src, n=6, frames=90, h=96, w=128)
    cmd = [sys.executable, os.path.join(REPO, "tools", "prepare_dataset.py"), "--dataset", "Kinetics", "--src", src,
           "--dst", dst, "--short-side", "96", "--workers", "1", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outputs = [os.path.join(dst, "train", ("abseiling", "zumba")[k % 2], s + ".mp4") for k, s in enumerate(stems)]
    # Its own process group: the kill takes the pool's workers too, as a Ctrl-C or a job end does.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(os.path.exists(o) for o in outputs):
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = {o: os.stat(o).st_mtime_ns for o in outputs if os.path.exists(o)}
    assert 1 <= len(finished) < len(outputs), "the kill must land halfway"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.load(open(os.path.join(dst, "prepare_report.json")))
    assert report["skipped_finished"] == len(finished) and report["transcoded"] == len(outputs) - len(finished)
    assert all(os.stat(o).st_mtime_ns == t for o, t in finished.items())  # not redone
    assert all(probe_video(o).num_frames >= 74 for o in outputs)  # 90 frames at 30 fps -> 75 at 25
    assert not [f for _, _, fs in os.walk(dst) for f in fs if ".part." in f]


@pytest.mark.parametrize("dataset", ["Kinetics", "UCF101", "SSv2"])
def test_the_copy_loads_with_the_same_dataset_class_and_counts(tmp_path, dataset):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    if dataset == "Kinetics":
        make_kinetics(src, n=4)
        splits = ["train"]
    elif dataset == "SSv2":
        os.makedirs(src)
        make_ssv2(src)
        splits = ["train", "val"]
    else:
        from ascnet.data.synthetic import SyntheticSpec, generate_synthetic_dataset

        spec = SyntheticSpec(num_classes=2, videos_per_class=3, num_frames=12, size=32, fps=25, seed=0)
        generate_synthetic_dataset(src, spec, progress=False)
        splits = ["train", "test"]
    assert load_tool().main(["--dataset", dataset, "--src", src, "--dst", dst, "--short-side", "32",
                             "--workers", "1", "--no-progress"]) == 0
    for split in splits:
        a = build_dataset(_cfg(src), split, "test", name=dataset)
        b = build_dataset(_cfg(dst), split, "test", name=dataset)
        assert len(a) == len(b) and a.labels == b.labels and a.class_names == b.class_names
        # The same relative paths; a WebM's copy is Matroska (H.264), found by the same id.
        assert [os.path.relpath(p, src).replace(".webm", ".mkv") for p in a.paths] == [
            os.path.relpath(p, dst) for p in b.paths]
        assert all(os.path.isfile(p) for p in b.paths)
        assert b[0]["clips"].shape[1:3] == (3, 4)
    with open(os.path.join(dst, "prepare_report.json")) as f:
        report = json.load(f)
    assert report["bad"] == [] and report["transcoded"] == report["videos"] > 0, report
    if dataset == "SSv2":  # an annotated id without its file is reported by path
        gone = os.path.join(src, "20bn-something-something-v2", "101.webm")
        os.remove(gone)
        assert load_tool().main(["--dataset", dataset, "--src", src, "--dst", str(tmp_path / "dst2"),
                                 "--workers", "1", "--no-progress"]) == 0
        with open(os.path.join(tmp_path / "dst2", "prepare_report.json")) as f:
            assert [b["path"] for b in json.load(f)["bad"]] == [gone]


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("link", ["dst", "src"])
def test_symlinks_do_not_hide_a_destination_inside_the_source(tmp_path, capsys, link):
    """Issue 22, item 6: a symlinked --dst inside the source wrote videos into it; a symlinked
    --src with --dst equal to the real source reported everything "already done"."""
    src = str(tmp_path / "src")
    make_kinetics(src, n=2)
    before = _tree(src)
    if link == "dst":  # a link outside the source, pointing to a folder inside it
        os.symlink(os.path.join(src, "train"), tmp_path / "out_link")
        args = ["--src", src, "--dst", str(tmp_path / "out_link" / "copy")]
    else:
        os.symlink(src, tmp_path / "src_link")
        args = ["--src", str(tmp_path / "src_link"), "--dst", src]
    rc = load_tool().main(["--dataset", "Kinetics", *args, "--short-side", "48", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "inside --src" in err, err
    assert _tree(src) == before
