"""tools/eval_retrieval.py on the generated dataset from a short quickstart pretraining run."""
import importlib.util
import json
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
RETRIEVAL = os.path.join(REPO, "configs", "Synthetic", "retrieval_quickstart.yaml")


def _shrink(root):
    """The quickstart recipe on a smaller dataset and network (a test must take seconds)."""
    return [
        "DATA.PATH_TO_DATA_DIR", str(root), "DATA.SYNTHETIC.NUM_CLASSES", "4", "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "6",
        "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32", "DATA.CROP_SIZE", "32",
        "DATA.TEST_CROP_SIZE", "32", "MODEL.BACKBONE.WIDTHS", "[4, 8, 8, 16]", "MODEL.BACKBONE.STEM_WIDTH", "4",
        "DATA_LOADER.NUM_WORKERS", "0", "TENSORBOARD.ENABLE", "False",
    ]


def _load_tool():
    spec = importlib.util.spec_from_file_location("eval_retrieval_tool", os.path.join(REPO, "tools", "eval_retrieval.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from ascnet.config import load_config
    from ascnet.engine.launch import launch
    from ascnet.engine.tasks import get_task

    root = tmp_path_factory.mktemp("synthetic")
    out = tmp_path_factory.mktemp("quickstart")
    cfg = load_config(QUICKSTART, _shrink(root) + [
        "OUTPUT_DIR", str(out), "TRAIN.BATCH_SIZE", "4", "TRAIN.MAX_ITERS", "2", "MODEL.PROJECTION.HIDDEN_DIM", "32",
        "MODEL.PROJECTION.OUT_DIM", "16", "MODEL.PREDICTOR.HIDDEN_DIM", "32", "MEMORY_BANK.SIZE", "16",
    ])
    launch(cfg, get_task("pretrain"))
    return root, out


def test_eval_retrieval_tool_with_visualize(pretrained, tmp_path, capsys):
    root, run_dir = pretrained
    out = tmp_path / "retrieval"
    # --checkpoint takes the pretraining OUTPUT_DIR (its newest checkpoint).
    _load_tool().main([
        "--cfg", RETRIEVAL, "--checkpoint", str(run_dir), "--visualize",
        *_shrink(root), "OUTPUT_DIR", str(out), "RETRIEVAL.NUM_CLIPS", "2", "RETRIEVAL.VIS_NUM_QUERIES", "3",
    ])
    printed = capsys.readouterr().out
    assert "RANDOMLY" not in printed
    assert re.search(r"top1 .*clips=2 crops=1 pool=mean center=False backend=faiss \| weights=sha256:[0-9a-f]{12}", printed)
    (json_path,) = [p for p in os.listdir(out) if p.endswith(".json")]
    saved = json.load(open(out / json_path))
    assert saved["load_report"]["missing"] == [] and saved["load_report"]["num_loaded"] > 0
    assert saved["protocol"]["checkpoint"].endswith(".pyth")
    page = saved["visualization"]
    html = open(page).read()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 3 * 6 + 1
    for s in srcs:
        assert os.path.isfile(os.path.join(os.path.dirname(page), s)), s
    # The backbone evaluated is the pretrained ONLINE encoder, not a random one.
    from ascnet.utils.checkpoint import Checkpointer

    ckpt = Checkpointer.read(saved["protocol"]["checkpoint"])["model"]
    assert any(k.startswith("online.backbone.") for k in ckpt)


def test_malicious_checkpoint_gets_the_run_net_message(tmp_path, capsys):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pyth"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": Evil()}, evil)
    rc = _load_tool().main(["--cfg", RETRIEVAL, "--checkpoint", str(evil), *_shrink(tmp_path / "data"),
                            "OUTPUT_DIR", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    from ascnet.utils.checkpoint import CheckpointError, read_checkpoint

    with pytest.raises(CheckpointError) as info:  # the reader run_net's resume and weights go through
        read_checkpoint(str(evil))
    assert err.startswith(f"Checkpoint error: Refusing to load '{evil}'")
    assert str(info.value).split("rebuild", 1)[1] in err


def test_options_after_the_overrides_are_named(capsys):
    with pytest.raises(SystemExit) as info:
        _load_tool().main(["--cfg", RETRIEVAL, "RETRIEVAL.NUM_CLIPS", "2", "--visualize"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "--visualize" in err and "before the KEY VALUE overrides" in err, err
