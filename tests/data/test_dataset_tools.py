"""tools/check_dataset.py and tools/make_synthetic_dataset.py end to end."""
import importlib.util
import json
import os

from video_helpers import write_index_video

from ascnet.data.synthetic import MARKER

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_check_dataset_reports_every_bad_video(tmp_path, capsys):
    root = str(tmp_path / "data")
    for k in range(3):
        write_index_video(os.path.join(root, f"good{k}.avi"), 20)
    write_index_video(os.path.join(root, "short.avi"), 10)
    data = open(write_index_video(os.path.join(root, "full.avi"), 200), "rb").read()
    open(os.path.join(root, "truncated.avi"), "wb").write(data[: len(data) // 3])
    open(os.path.join(root, "corrupt.mp4"), "wb").write(os.urandom(2000))
    names = ["good0.avi", "short.avi", "good1.avi", "truncated.avi", "corrupt.mp4", "missing.avi", "good2.avi"]
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.writelines(f"{n} 0\n" for n in names)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"TRAIN:\n  DATASET: Kinetics\nDATA:\n  PATH_TO_DATA_DIR: {root}\n  NUM_FRAMES: 8\n  TARGET_FPS: 0\n"
        f"  CROP_SIZE: 32\nOUTPUT_DIR: {tmp_path / 'out'}\n"
    )
    rc = load_tool("check_dataset").main(["--cfg", str(cfg), "--workers", "2"])
    assert rc == 1
    report = json.load(open(tmp_path / "out" / "dataset_check_Kinetics_train.json"))
    bad = {os.path.basename(r["path"]): r["reason"] for r in report["bad_videos"]}
    assert bad == {"short.avi": "too_short", "truncated.avi": "truncated", "corrupt.mp4": "unreadable", "missing.avi": "missing"}
    assert report["videos"] == 7 and report["bad"] == 4
    assert "7 videos, 4 bad" in capsys.readouterr().out


def test_make_synthetic_dataset_tool(tmp_path):
    out = str(tmp_path / "syn")
    args = ["--out", out, "--num-classes", "2", "--videos-per-class", "3", "--num-frames", "8", "--size", "32"]
    tool = load_tool("make_synthetic_dataset")
    assert tool.main(args) == 0
    assert json.load(open(os.path.join(out, MARKER)))["num_classes"] == 2
    assert sum(len(fs) for _, _, fs in os.walk(os.path.join(out, "UCF-101"))) == 6
    assert tool.main(args) == 0  # already complete: nothing rewritten
    assert tool.main(args[:-1] + ["48"]) == 2  # other parameters in the same folder: refused


def _official_kinetics(root, names, present):
    """Kinetics' official layout: annotations/train.csv and train/<label>/<id>_<start>_<end>.mp4."""
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "train.csv"), "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        f.writelines(f"abseiling,{n},000010,000020,train\n" for n in names)
    for n in present:
        write_index_video(os.path.join(root, "train", "abseiling", f"{n}_000010_000020.mp4"), 20, size=n_size(n))


def n_size(name):
    return {"tiny1": 1 * 2, "tiny2": 2 * 2}.get(name, 64)  # even sizes: the encoder needs them


def test_check_dataset_names_missing_and_too_small_videos(tmp_path, capsys):
    root = str(tmp_path / "k400")
    names = ["aaa", "bbb", "gone1", "tiny1", "tiny2", "gone2", "ccc"]
    _official_kinetics(root, names, present=["aaa", "bbb", "tiny1", "tiny2", "ccc"])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"TRAIN:\n  DATASET: Kinetics\nDATA:\n  PATH_TO_DATA_DIR: {root}\n  NUM_FRAMES: 4\n  TARGET_FPS: 0\n"
        f"  CROP_SIZE: 32\nOUTPUT_DIR: {tmp_path / 'out'}\n"
    )
    for extra in ([], ["--probe-only"]):
        rc = load_tool("check_dataset").main(["--cfg", str(cfg), *extra])
        printed = capsys.readouterr().out
        assert rc == 1
        report = json.load(open(tmp_path / "out" / "dataset_check_Kinetics_train.json"))
        bad = {os.path.basename(r["path"]).split("_")[0]: r["reason"] for r in report["bad_videos"]}
        assert bad == {"gone1": "missing", "gone2": "missing", "tiny1": "too_small", "tiny2": "too_small"}, bad
        assert report["videos"] == 7 and report["bad"] == 4
        assert "gone1" in printed and "gone2" in printed and "missing" in printed


def test_check_dataset_ucf_names_with_spaces_and_a_bad_line(tmp_path, capsys):
    from test_ucf101 import make_ucf

    root = make_ucf(str(tmp_path / "ucf"))
    spaced = "YoYo/v_YoYo g97_c01.avi"
    write_index_video(os.path.join(root, "UCF-101", spaced), 16)
    train_list = os.path.join(root, "ucfTrainTestlist", "trainlist01.txt")
    with open(train_list, "a") as f:
        f.write(f"{spaced} 3\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"TRAIN:\n  DATASET: UCF101\nDATA:\n  PATH_TO_DATA_DIR: {root}\n  NUM_FRAMES: 4\n  TARGET_FPS: 0\n"
        f"  CROP_SIZE: 32\nOUTPUT_DIR: {tmp_path / 'out'}\n"
    )
    tool = load_tool("check_dataset")
    assert tool.main(["--cfg", str(cfg)]) == 0
    assert "7 videos, 0 bad" in capsys.readouterr().out
    n = len(open(train_list).read().splitlines())
    with open(train_list, "a") as f:
        f.write("YoYo/v_YoYo_g98_c01.avi\n")  # a training line without its class number
    assert tool.main(["--cfg", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trainlist01.txt" in err and f"line {n + 1}" in err, err
    # Options after the overrides: said so, not taken as an override.
    try:
        tool.main(["--cfg", str(cfg), "DATA.NUM_FRAMES", "4", "--probe-only"])
    except SystemExit as e:
        assert e.code == 2
    assert "before the KEY VALUE overrides" in capsys.readouterr().err
