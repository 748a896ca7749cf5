"""Checkpointer: round trip of the full state, atomic writes, safe loading."""
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from ascnet.utils import checkpoint as ckpt_mod
from ascnet.utils.checkpoint import CheckpointError, Checkpointer, load_model_state_dict, model_state_dict


class _Counter:
    """A stateful extra object (e.g. a data-loader position)."""

    def __init__(self):
        self.n = 0

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, s):
        self.n = s["n"]


def _resume(ck, path=""):
    """What the trainer does with a Checkpointer (ascnet/engine/trainer.py): resume from the
    checkpoint it finds, else load ``path``'s model only; the extra entries, or {}."""
    found = ck.find_resume_checkpoint()
    if found:
        return ck.load(found)
    if path:
        ck.load(path, checkpointables=[], rng=False)
    return {}


def _tiny():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    m.register_buffer("bank", torch.zeros(5, 2))
    return m


def _train_steps(m, opt, sched, n=3):
    for _ in range(n):
        loss = m(torch.randn(6, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    m.bank.add_(1.0)


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_round_trip_restores_everything(tmp_path):
    m = _tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    counter = _Counter()
    counter.n = 11
    _train_steps(m, opt, sched)
    ck = Checkpointer(str(tmp_path), m, optimizer=opt, scheduler=sched, counter=counter)
    path = ck.save("checkpoint_iter_0000003", iteration=3, epoch=1, cfg="TASK: pretrain\n")
    assert path == os.path.join(str(tmp_path), "checkpoints", "checkpoint_iter_0000003.pyth")
    assert ck.has_checkpoint() and ck.get_checkpoint_file() == path
    expected_draws = _draws()
    ref_sd = {k: v.clone() for k, v in m.state_dict().items()}
    ref_opt = opt.state_dict()

    # A fresh run: different weights, optimizer, scheduler, RNG.
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(5)
    m2 = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    m2.register_buffer("bank", torch.full((5, 2), -3.0))
    opt2 = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    counter2 = _Counter()
    ck2 = Checkpointer(str(tmp_path), m2, optimizer=opt2, scheduler=sched2, counter=counter2)
    extra = _resume(ck2)

    assert extra["iteration"] == 3 and extra["epoch"] == 1 and extra["cfg"] == "TASK: pretrain\n"
    for k, v in m2.state_dict().items():
        assert torch.equal(v, ref_sd[k]), k
    assert torch.equal(m2.bank, torch.ones(5, 2))
    assert sched2.last_epoch == 3 and sched2.get_last_lr() == sched.get_last_lr()
    assert counter2.n == 11
    s1, s2 = ref_opt["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k]["momentum_buffer"], s2[k]["momentum_buffer"])
    # RNG: draws after restoring equal the draws right after saving.
    got = _draws()
    assert got[0] == expected_draws[0] and got[1] == expected_draws[1]
    assert torch.equal(got[2], expected_draws[2])


def test_ddp_submodule_keys_are_clean(tmp_path):
    # A model whose submodule is wrapped (ASCNet wraps only its online network) saves and
    # loads with plain names, into a wrapped or an unwrapped model.
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.online = nn.Linear(3, 3)
            self.target = nn.Linear(3, 3)

    src = Outer()
    src.online = nn.DataParallel(src.online)  # same key layout as DDP ("module.")
    sd = model_state_dict(src)
    assert set(sd) == {"online.weight", "online.bias", "target.weight", "target.bias"}
    dst = Outer()
    load_model_state_dict(dst, sd)
    assert torch.equal(dst.online.weight, src.online.module.weight)
    dst2 = Outer()
    dst2.online = nn.DataParallel(dst2.online)
    load_model_state_dict(dst2, sd)
    assert torch.equal(dst2.online.module.weight, src.online.module.weight)


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    m = _tiny()
    ck = Checkpointer(str(tmp_path), m)
    good = ck.save("first", iteration=1)
    good_w = m[0].weight.detach().clone()
    with torch.no_grad():
        m[0].weight.add_(1.0)

    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # bytes reach the temporary file...
        f.truncate(max(f.tell() // 2, 1))  # ...half of them stay
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_mod.torch, "save", crashing_save)
    with pytest.raises(CheckpointError, match="simulated.*Free space.*first.pyth, is intact"):
        ck.save("second", iteration=2)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)

    files = sorted(os.listdir(tmp_path / "checkpoints"))
    assert files == ["first.pyth", "last_checkpoint"]  # no temp file left, no "second"
    assert ck.get_checkpoint_file() == good
    m2 = _tiny()
    with torch.no_grad():
        m2[0].weight.zero_()
    extra = _resume(Checkpointer(str(tmp_path), m2))
    assert extra["iteration"] == 1 and torch.equal(m2[0].weight, good_w)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_during_a_save_is_a_ctrl_c_not_a_disk_error(tmp_path, monkeypatch, interrupt):
    """SIGINT while torch.save streams into the file: the KeyboardInterrupt raised in the file's
    ``write`` comes out of torch.save as a RuntimeError ("enforce fail at inline_container.cc").
    The run must stop as interrupted (exit 130), not as a disk error (exit 2, "Free space"), with
    no partial file and the previous checkpoint still named by the pointer."""
    m = _tiny()
    ck = Checkpointer(str(tmp_path), m)
    good = ck.save("first", iteration=1)
    real_save = torch.save

    class InterruptedFile:
        def __init__(self, f):
            self._f, self._writes = f, 0

        def write(self, b):
            self._writes += 1
            if self._writes == 3:  # the signal handler runs in the middle of the stream
                raise interrupt()
            return self._f.write(b)

        def __getattr__(self, name):
            return getattr(self._f, name)

    monkeypatch.setattr(ckpt_mod.torch, "save", lambda obj, f, *a, **k: real_save(obj, InterruptedFile(f), *a, **k))
    with pytest.raises(interrupt) as info:
        ck.save("second", iteration=2)
    assert isinstance(info.value.__cause__, RuntimeError)  # what torch.save raised, kept as the cause
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["first.pyth", "last_checkpoint"]
    assert ck.get_checkpoint_file() == good


def test_killed_process_mid_save_keeps_previous_checkpoint(tmp_path):
    # A process SIGKILLed while streaming a large checkpoint (os._exit in the middle of the
    # write, before the rename) leaves the previous file and pointer loadable.
    script = textwrap.dedent(
        f"""
        import os, torch
        from torch import nn
        from ascnet.utils import checkpoint as c
        m = nn.Linear(4, 4)
        ck = c.Checkpointer({str(tmp_path)!r}, m)
        ck.save("first", iteration=1)
        m.register_buffer("big", torch.zeros(2_000_000))
        real = torch.save
        def dying(obj, f, *a, **k):
            real(obj, f, *a, **k)
            f.flush()
            os._exit(9)   # like SIGKILL: no cleanup, no rename
        c.torch.save = dying
        ck.save("second", iteration=2)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    leftovers = os.listdir(tmp_path / "checkpoints")
    assert "second.pyth" not in leftovers and any(".tmp-" in f for f in leftovers)
    m = nn.Linear(4, 4)
    ck = Checkpointer(str(tmp_path), m)
    assert ck.get_checkpoint_file().endswith("first.pyth")
    assert _resume(ck)["iteration"] == 1


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_arbitrary_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pyth"
    torch.save({"model": {}, "payload": _Evil()}, path)
    ck = Checkpointer(str(tmp_path), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="weights_only"):
        ck.load(str(path))


def test_missing_file_and_init_weights(tmp_path):
    m = nn.Linear(2, 2)
    ck = Checkpointer(str(tmp_path / "a"), m)
    with pytest.raises(CheckpointError, match="does not exist"):
        ck.load(str(tmp_path / "nope.pyth"))
    assert not ck.has_checkpoint() and ck.get_checkpoint_file() == ""
    # nothing to resume: the given weights only.
    src = nn.Linear(2, 2)
    p = Checkpointer(str(tmp_path / "b"), src).save("w")
    assert _resume(ck, p) == {}
    assert torch.equal(m.weight, src.weight)


def test_max_to_keep(tmp_path):
    ck = Checkpointer(str(tmp_path), nn.Linear(2, 2), max_to_keep=2)
    for i in range(4):
        ck.save(f"c{i}")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["c2.pyth", "c3.pyth", "last_checkpoint"]


def _damaged(raw, kind):
    return {
        "truncated": raw[: len(raw) // 2],
        "zeroed": b"\0" * len(raw),
        "empty": b"",
        "garbled_header": raw[:30] + bytes(range(7, 207)) + raw[230:],
        "random_start": bytes(range(255, 191, -1)) + raw[64:],
    }[kind]


@pytest.mark.parametrize("kind", ["truncated", "zeroed", "empty", "garbled_header", "random_start"])
def test_damaged_file_is_one_line_unreadable_not_unsafe(tmp_path, kind):
    path = Checkpointer(str(tmp_path), _tiny()).save("c", iteration=1)
    raw = open(path, "rb").read()
    open(path, "wb").write(_damaged(raw, kind))
    with pytest.raises(CheckpointError) as info:
        Checkpointer.read(path)
    msg = str(info.value)
    assert "\n" not in msg and path in msg and "unreadable" in msg and "Refusing" not in msg, msg
    assert info.value.damaged


@pytest.mark.parametrize("pointer", [b"", b"\x80\x04\xff\xfe", b"gone.pyth"])
def test_bad_pointer_names_the_pointer_file(tmp_path, pointer, caplog):
    import logging

    caplog.set_level(logging.WARNING)
    m = _tiny()
    ck = Checkpointer(str(tmp_path), m)
    ck.save("only", iteration=5)
    ptr = tmp_path / "checkpoints" / "last_checkpoint"
    ptr.write_bytes(pointer)
    assert not ck.has_checkpoint() and ck.get_checkpoint_file() == ""
    assert _resume(Checkpointer(str(tmp_path), _tiny()))["iteration"] == 5
    text = " ".join(r.getMessage() for r in caplog.records)
    assert str(ptr) in text and "only.pyth" in text and "CHECKPOINT_FILE_PATH" not in text
    assert ptr.read_text() == "only.pyth"  # pointed at the file used
    # Nothing else to resume: a fresh start, the warning names the pointer file.
    caplog.clear()
    os.remove(tmp_path / "checkpoints" / "only.pyth")
    ptr.write_bytes(pointer or b"gone.pyth")
    assert _resume(Checkpointer(str(tmp_path), _tiny())) == {}
    text = " ".join(r.getMessage() for r in caplog.records)
    assert str(ptr) in text and "CHECKPOINT_FILE_PATH" not in text


def test_atomic_write_failure_leaves_old_file_and_no_partial(tmp_path):
    from ascnet.utils.io import atomic_write, atomic_write_bytes

    path = str(tmp_path / "sub" / "config.yaml")
    atomic_write_bytes(path, b"old")

    def failing(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, failing)
    assert open(path, "rb").read() == b"old" and os.listdir(tmp_path / "sub") == ["config.yaml"]
