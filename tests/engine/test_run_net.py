"""tools/run_net.py as users run it: --help, --dry-run, config errors; shipped configs load."""
import glob
import os
import subprocess
import sys

import pytest

from ascnet.config import load_config


def _run(repo_root, *args, timeout=120):
    return subprocess.run(
        [sys.executable, os.path.join(repo_root, "tools", "run_net.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=repo_root,
    )


def test_help_exits_zero_with_examples(repo_root):
    r = _run(repo_root, "--help")
    assert r.returncode == 0, r.stderr
    assert "--dry-run" in r.stdout and "--resume" in r.stdout and "--slurm" in r.stdout
    assert "examples:" in r.stdout and "ASCNet_R3D18_quickstart.yaml" in r.stdout


def test_dry_run_prints_resolved_config_and_runs_nothing(repo_root, tmp_path):
    out = tmp_path / "out"
    r = _run(repo_root, "--cfg", "configs/Synthetic/ASCNet_R3D18_quickstart.yaml", "--dry-run", "--resume",
             "SOLVER.BASE_LR", "0.3", "--opts", "OUTPUT_DIR", str(out), "TRAIN.MAX_ITERS", "7")
    assert r.returncode == 0, r.stderr
    assert "BASE_LR: 0.3" in r.stdout and "MAX_ITERS: 7" in r.stdout and "AUTO_RESUME: true" in r.stdout
    assert "Nothing was run" in r.stdout
    assert not out.exists()


def test_config_mistake_is_reported_without_traceback(repo_root, capsys):
    sys.path.insert(0, os.path.join(repo_root, "tools"))
    try:
        import run_net
    finally:
        sys.path.pop(0)
    cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
    assert run_net.main(["--cfg", cfg, "--dry-run", "SOLVER.BASE_LRR", "1"]) == 2
    assert "Did you mean 'SOLVER.BASE_LR'" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Kinetics", "*.yaml")))
                         + [os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")])
def test_pretrain_configs_load(path):
    cfg = load_config(path)
    assert cfg.TASK == "pretrain" and cfg.MODEL.META_ARCH == "ASCNet" and list(cfg.DATA.SPEEDS) == [1, 2]
    if "Kinetics" in path:
        assert cfg.TRAIN.DATASET == "Kinetics" and cfg.MEMORY_BANK.SIZE == 32768 and cfg.NUM_GPUS == 8
        assert cfg.SOLVER.BASE_LR == 0.1 and cfg.SOLVER.BASE_BATCH_SIZE == 64 and cfg.SOLVER.MAX_EPOCH == 200
        assert cfg.AMP.ENABLE and cfg.DATA.NUM_FRAMES == 16
    else:
        assert cfg.NUM_GPUS == 0 and cfg.AUG.FLIP_PROB == 0.0 and cfg.TENSORBOARD.ENABLE
        assert cfg.TRAIN.DATASET == "Synthetic" and cfg.DATA.NUM_FRAMES == 8 and cfg.DATA.CROP_SIZE <= 64


def _import_run_net(repo_root):
    sys.path.insert(0, os.path.join(repo_root, "tools"))
    try:
        import run_net
    finally:
        sys.path.pop(0)
    return run_net


@pytest.mark.parametrize("option", ["--dry-run", "--resume", "--slurm"])
def test_options_after_the_overrides_are_named(repo_root, capsys, option):
    run_net = _import_run_net(repo_root)
    cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
    assert run_net.main(["--cfg", cfg, "SOLVER.BASE_LR", "0.05", option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err and "before the KEY VALUE overrides" in err, err


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _bad_checkpoints(tmp_path):
    import torch

    evil = tmp_path / "evil.pyth"
    torch.save({"model": {}, "payload": _Evil()}, evil)
    good = tmp_path / "good.pyth"
    torch.save({"model": {"w": torch.zeros(64, 64)}, "iteration": 1}, good)
    raw = good.read_bytes()
    garbled = tmp_path / "garbled.pyth"
    garbled.write_bytes(raw[:30] + bytes(range(7, 207)) + raw[230:])
    return {"malicious": evil, "garbled": garbled}


@pytest.mark.parametrize("kind", ["malicious", "garbled"])
def test_bad_initial_checkpoint_is_one_line_and_exit_code_2(repo_root, tmp_path, capsys, kind):
    run_net = _import_run_net(repo_root)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the stand-ins of test_trainer
    try:
        bad = _bad_checkpoints(tmp_path)[kind]
        cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
        rc = run_net.main(["--cfg", cfg, "PLUGINS", "['test_trainer']", "MODEL.META_ARCH", "_TinySSL",
                           "TRAIN.DATASET", "_TinyClips", "AUG.DEVICE", "loader", "TRAIN.BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0",
                           "TENSORBOARD.ENABLE", "False", "OUTPUT_DIR", str(tmp_path / "out"),
                           "TRAIN.CHECKPOINT_FILE_PATH", str(bad), "TRAIN.MAX_ITERS", "1"])
    finally:
        sys.path.pop(0)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("Checkpoint error: ") and str(bad) in err
    if kind == "malicious":
        assert "Refusing to load" in err and "weights_only=True" in err
    else:
        assert "unreadable (truncated or corrupt" in err and "Refusing" not in err


def test_unparseable_split_line_is_one_line_and_exit_code_2(repo_root, tmp_path, capsys):
    run_net = _import_run_net(repo_root)
    lists = tmp_path / "ucf" / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 YoYo\n")
    (lists / "trainlist01.txt").write_text("YoYo/v_YoYo g01_c01.avi 1\nYoYo/v_YoYo_g02_c01.avi\n")
    cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
    rc = run_net.main(["--cfg", cfg, "TRAIN.DATASET", "UCF101", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "ucf"),
                       "OUTPUT_DIR", str(tmp_path / "out"), "TENSORBOARD.ENABLE", "False"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("Dataset error: ") and "trainlist01.txt" in err and "line 2" in err


def test_full_disk_while_writing_metrics_is_one_line_and_exit_code_2(repo_root, tmp_path, capsys, monkeypatch,
                                                                     full_disk_file):
    from iopath.common.file_io import g_pathmgr

    real_open = g_pathmgr.open

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return full_disk_file(f) if str(path).endswith("metrics.json") and "a" in mode else f

    monkeypatch.setattr(g_pathmgr, "open", full_open)
    run_net = _import_run_net(repo_root)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the stand-ins of test_trainer
    try:
        cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
        out = tmp_path / "out"
        rc = run_net.main(["--cfg", cfg, "PLUGINS", "['test_trainer']", "MODEL.META_ARCH", "_TinySSL",
                           "TRAIN.DATASET", "_TinyClips", "AUG.DEVICE", "loader", "TRAIN.BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0",
                           "TENSORBOARD.ENABLE", "False", "OUTPUT_DIR", str(out), "TRAIN.MONITOR_PERIOD", "0",
                           "LOG_PERIOD", "1", "TRAIN.MAX_ITERS", "2"])
    finally:
        sys.path.pop(0)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("Output error: Could not append the record of iteration 1 to ")
    assert str(out / "metrics.json") in err and "No space left on device" in err and "Free space" in err
