"""tools/export_backbone.py: a bad checkpoint is one line and exit code 2 (the shared reader)."""
import importlib.util
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location("export_backbone_tool", os.path.join(REPO, "tools", "export_backbone.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_export_round_trip_and_bad_checkpoints(tmp_path, capsys):
    good = tmp_path / "good.pyth"
    torch.save({"model": {"backbone.w": torch.arange(6.0)}, "iteration": 3}, good)
    out = tmp_path / "sub" / "bb.pyth"
    assert _tool().main(["--checkpoint", str(good), "--out", str(out)]) == 0
    assert torch.equal(torch.load(out, weights_only=True)["model"]["w"], torch.arange(6.0))
    assert not [n for n in os.listdir(out.parent) if ".tmp-" in n]
    capsys.readouterr()

    evil = tmp_path / "evil.pyth"
    torch.save({"model": {}, "x": _Evil()}, evil)
    truncated = tmp_path / "truncated.pyth"
    truncated.write_bytes(good.read_bytes()[:100])
    for bad, words in ((evil, "Refusing to load"), (truncated, "unreadable"), (tmp_path / "nope.pyth", "does not exist")):
        assert _tool().main(["--checkpoint", str(bad), "--out", str(tmp_path / "x.pyth")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("Checkpoint error: ") and words in err and str(bad) in err, err
