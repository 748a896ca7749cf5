"""The data contract of DATASET_REGISTRY (ascnet/data/build.py): docs/plugins.md's minimal
dataset plugin returns uint8 (S, T, H, W, C) clips plus parameters, loads through PLUGINS and
trains; a dataset that returns float clips to the batch augmentation is a one-line error
naming its class."""
import os
import re

import pytest
import torch

from ascnet.data.utils import AnnotationError
from ascnet.engine.plugins import load_config
from ascnet.engine.trainer import Trainer

QUICKSTART = os.path.join("configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
TINY = [
    "MODEL.BACKBONE.WIDTHS", "[8,8,8,8]", "MODEL.BACKBONE.STEM_WIDTH", "8",
    "MODEL.PROJECTION.HIDDEN_DIM", "16", "MODEL.PROJECTION.OUT_DIM", "8", "MODEL.PREDICTOR.HIDDEN_DIM", "16",
    "DATA.NUM_FRAMES", "4", "DATA.CROP_SIZE", "16", "TRAIN.BATCH_SIZE", "4", "SOLVER.BASE_BATCH_SIZE", "4",
    "MEMORY_BANK.SIZE", "8", "DATA_LOADER.NUM_WORKERS", "0", "TRAIN.MAX_ITERS", "3", "TRAIN.MONITOR_PERIOD", "0",
    "TENSORBOARD.ENABLE", "False", "LOG_PERIOD", "1", "TRAIN.DATASET", "NoiseVideos", "PLUGINS", "['my_dataset']",
]


@pytest.fixture
def my_dataset(repo_root, tmp_path, monkeypatch):
    """The docs' example package, written out as it is printed."""
    text = open(os.path.join(repo_root, "docs", "plugins.md"), encoding="utf-8").read()
    code = re.search(r"```python\n(# my_dataset/__init__.py\n.*?)```", text, re.S).group(1)
    (tmp_path / "my_dataset").mkdir()
    (tmp_path / "my_dataset" / "__init__.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_docs_dataset_plugin_loads_and_trains(repo_root, my_dataset):
    cfg = load_config(os.path.join(repo_root, QUICKSTART), TINY + ["OUTPUT_DIR", str(my_dataset / "out")])
    from ascnet.data.build import build_dataset

    ds = build_dataset(cfg, "train", "pretrain")
    s = ds[(3, 12345)]
    assert s["clips"].dtype == torch.uint8 and s["clips"].shape == (2, 4, 18, 18, 3)  # (S, T, L, L, C)
    assert {k: v.shape[0] for k, v in s["aug"].items()} == {k: 2 for k in s["aug"]}
    assert torch.equal(ds[(3, 12345)]["clips"], s["clips"])  # the seed drives the sample
    t = Trainer(cfg)
    t.train()
    assert t.iter == 3 and t.cfg.TRAIN.DATASET == "NoiseVideos"
    batch = t.prepare_batch(next(iter(t.train_loader)))
    assert batch["clips"].dtype == torch.float32 and batch["clips"].shape == (4, 2, 3, 4, 16, 16)


def test_float_clips_reaching_the_batch_augmentation_name_the_dataset(repo_root, my_dataset):
    (my_dataset / "float_dataset.py").write_text(
        "from ascnet.data.build import DATASET_REGISTRY\nfrom my_dataset import NoiseVideos\n"
        "@DATASET_REGISTRY.register()\nclass FloatNoise(NoiseVideos):\n"
        "    def __getitem__(self, key):  # the old documented contract: float (S, C, T, H, W)\n"
        "        s = super().__getitem__(key)\n"
        "        return {'clips': s['clips'].permute(0, 4, 1, 2, 3).float() / 255, 'index': s['index'], 'label': -1}\n"
    )
    cfg = load_config(os.path.join(repo_root, QUICKSTART), TINY + [
        "OUTPUT_DIR", str(my_dataset / "out"), "TRAIN.DATASET", "FloatNoise", "PLUGINS", "['my_dataset', 'float_dataset']"])
    with pytest.raises(AnnotationError) as e:
        Trainer(cfg).train()
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith("Dataset FloatNoise (TRAIN.DATASET) returned torch.float32 clips")
    assert "uint8 (S, T, H, W, C)" in msg and "AUG.DEVICE loader" in msg
    assert not (my_dataset / "out" / "checkpoints").exists() or not os.listdir(my_dataset / "out" / "checkpoints")
