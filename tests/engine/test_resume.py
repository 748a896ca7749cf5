"""Auto-resume around damage (ascnet/engine/resume.py and the trainer's resume path): a lost or
damaged pointer, a damaged newest checkpoint, pruning across restarts, partial files, a folder
of another run, a fresh start over old checkpoints, a full disk, replayed metrics.

The stand-in model and dataset of tests/engine/test_trainer.py (6 iterations per epoch, 2
epochs) keep every run at a second or two.
"""
import builtins
import json
import logging
import os

import pytest
import torch
from test_trainer import _cfg, _StopAt, _weights  # noqa: F401  (registers the stand-ins)

from ascnet.engine.trainer import Trainer
from ascnet.utils.checkpoint import CheckpointError, Checkpointer


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Weights of an uninterrupted 12-iteration run."""
    out = tmp_path_factory.mktemp("ref")
    torch.manual_seed(0)
    t = Trainer(_cfg(out))
    t.train()
    return _weights(t)


def _crashed_run(out, stop=8, **kw):
    """A run killed after iteration ``stop``: checkpoints at iterations 4, 6 (epoch 1) and 8."""
    torch.manual_seed(0)
    t = _StopAt(_cfg(out, **{"TRAIN.CHECKPOINT_ITERS": 4, **kw}))
    t.stop = stop
    with pytest.raises(KeyboardInterrupt):
        t.train()
    return out / "checkpoints"


def _contents(folder):
    return {n: (folder / n).read_bytes() for n in os.listdir(folder) if n.endswith(".pyth")}


@pytest.mark.parametrize("pointer", ["missing", "empty", "binary", "dangling"])
def test_lost_pointer_resumes_from_newest_readable_by_stored_iteration(tmp_path, reference, pointer, caplog):
    ck = _crashed_run(tmp_path)
    # A copy of the iteration-4 file under a name that sorts last and with the newest mtime:
    # the choice must follow the iteration stored in the files, not names or times.
    (ck / "zz_copy_of_iter_4.pyth").write_bytes((ck / "checkpoint_iter_0000004.pyth").read_bytes())
    if pointer == "missing":
        os.remove(ck / "last_checkpoint")
    else:
        (ck / "last_checkpoint").write_bytes({"empty": b"", "binary": b"\x80\x04\xff\xfe\x00",
                                              "dangling": b"checkpoint_iter_0000099.pyth"}[pointer])
    before = _contents(ck)
    caplog.set_level(logging.WARNING)
    torch.manual_seed(123)
    resumed = Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4}))
    resumed.train()
    assert resumed.start_iter == 8 and resumed.iter == 12
    warned = [r.getMessage() for r in caplog.records if "last_checkpoint" in r.getMessage()]
    assert any("checkpoint_iter_0000008.pyth" in m for m in warned), warned
    for k, v in _weights(resumed).items():
        assert torch.equal(v, reference[k]), k
    after = _contents(ck)
    for name in ("checkpoint_iter_0000004.pyth", "checkpoint_epoch_00001.pyth", "checkpoint_iter_0000008.pyth"):
        assert after[name] == before[name], f"{name} was overwritten"


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "garbled_header"])
def test_damaged_newest_checkpoint_falls_back_and_is_moved_aside(tmp_path, reference, damage, caplog):
    ck = _crashed_run(tmp_path)
    bad = ck / "checkpoint_iter_0000008.pyth"
    raw = bad.read_bytes()
    bad.write_bytes({"truncated": raw[: len(raw) // 2], "zeroed": b"\0" * len(raw),
                     "garbled_header": raw[:30] + bytes(range(7, 7 + 200)) + raw[230:]}[damage])
    caplog.set_level(logging.WARNING)
    torch.manual_seed(123)
    resumed = Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4}))
    resumed.train()
    assert resumed.start_iter == 6  # checkpoint_epoch_00001, the newest readable one
    assert any(str(bad) in r.getMessage() and "damaged" in r.getMessage().lower() for r in caplog.records)
    assert (ck / "checkpoint_iter_0000008.pyth.corrupt").exists()
    for k, v in _weights(resumed).items():
        assert torch.equal(v, reference[k]), k


def test_pruning_counts_every_checkpoint_across_restarts_and_removes_partial_files(tmp_path):
    kw = {"TRAIN.CHECKPOINT_ITERS": 1, "TRAIN.CHECKPOINT_MAX_KEEP": 3}
    ck = tmp_path / "checkpoints"
    for stop in (2, 4, 6, 8):  # four killed restarts, one or more saves each
        torch.manual_seed(0)
        t = _StopAt(_cfg(tmp_path, **kw))
        t.stop = stop
        with pytest.raises(KeyboardInterrupt):
            t.train()
        (ck / f"checkpoint_iter_{stop + 1:07d}.pyth.tmp-0a1b2c3d").write_bytes(b"partial")  # a kill mid-save
        files = [f for f in os.listdir(ck) if f.endswith(".pyth")]
        assert len(files) <= 3, files
    t = Trainer(_cfg(tmp_path, **kw))
    t.train()
    names = sorted(os.listdir(ck))
    assert not any(".tmp-" in n for n in names), names
    assert len([n for n in names if n.endswith(".pyth")]) == 3, names
    kept = sorted(Checkpointer.read(str(ck / n))["iteration"] for n in names if n.endswith(".pyth"))
    assert kept == [11, 12, 12]  # iteration 12: checkpoint_iter_0000012 and checkpoint_epoch_00002
    assert Checkpointer(str(tmp_path), torch.nn.Identity()).get_checkpoint_file().endswith("checkpoint_epoch_00002.pyth")


def test_folder_of_another_run_is_refused_before_anything_is_written(tmp_path):
    ck = _crashed_run(tmp_path, stop=5)
    before_cfg = (tmp_path / "config.yaml").read_text()
    before = _contents(ck)
    other = _cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4, "DATA.NUM_FRAMES": 4, "MODEL.NUM_CLASSES": 7})
    with pytest.raises(CheckpointError, match=r"holds another run.*DATA\.NUM_FRAMES.*MODEL\.NUM_CLASSES.*new OUTPUT_DIR"):
        Trainer(other).train()
    assert (tmp_path / "config.yaml").read_text() == before_cfg
    assert _contents(ck) == before
    # Keys outside the list may change between restarts (here: the learning rate).
    t = Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4, "SOLVER.BASE_LR": 0.01}))
    t.train()
    assert t.start_iter == 4 and "BASE_LR: 0.01" in (tmp_path / "config.yaml").read_text()


def test_model_defining_keys_are_the_documented_list(repo_root):
    from ascnet.engine.resume import MODEL_DEFINING_KEYS, model_defining_differences

    cfg = _cfg("/tmp/unused")
    assert model_defining_differences(cfg.dump(), cfg) == []
    doc = open(os.path.join(repo_root, "docs", "engine.md")).read()
    from ascnet.config import get_cfg
    from ascnet.engine.resume import model_defining_keys

    ascnet_keys = model_defining_keys(get_cfg())  # the default META_ARCH, ASCNet, adds its own
    assert set(MODEL_DEFINING_KEYS) < set(ascnet_keys)
    for key in ascnet_keys:
        assert f"`{key.rstrip('.')}" in doc, key


def test_fresh_start_never_overwrites_existing_checkpoints(tmp_path):
    ck = _crashed_run(tmp_path, stop=5)
    before = _contents(ck)
    with pytest.raises(CheckpointError, match=r"already holds 1 checkpoint.*AUTO_RESUME is False.*new OUTPUT_DIR"):
        Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 4, "TRAIN.AUTO_RESUME": False})).train()
    assert _contents(ck) == before


def test_disk_full_while_saving_is_one_message_and_keeps_the_pointer(tmp_path, monkeypatch, full_disk_file):
    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return full_disk_file(f, room=1000) if "checkpoint_iter_0000004" in str(path) and "w" in mode else f

    monkeypatch.setattr(builtins, "open", full_open)
    t = Trainer(_cfg(tmp_path, **{"TRAIN.CHECKPOINT_ITERS": 2}))
    with pytest.raises(CheckpointError) as info:
        t.train()
    msg = str(info.value)
    assert "\n" not in msg and "No space left on device" in msg and "Free space" in msg
    assert "checkpoint_iter_0000002.pyth, is intact" in msg
    assert msg in (tmp_path / "log.txt").read_text()
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["checkpoint_iter_0000002.pyth", "last_checkpoint"]
    assert Checkpointer(str(tmp_path), torch.nn.Identity()).get_checkpoint_file().endswith("checkpoint_iter_0000002.pyth")


def test_resumed_run_logs_each_iteration_once(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    kw = {"TRAIN.CHECKPOINT_ITERS": 4, "TENSORBOARD.ENABLE": True}
    _crashed_run(tmp_path, stop=6, **kw)  # iterations 5 and 6 are replayed after the resume
    Trainer(_cfg(tmp_path, **kw)).train()
    with open(tmp_path / "metrics.json") as f:
        its = [json.loads(line)["iteration"] for line in f if line.strip()]
    assert its == list(range(1, 13))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("loss")]
    assert steps == list(range(1, 13))
