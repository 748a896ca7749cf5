"""The model protocol as code: a PretrainModel subclass extends the checkpoint prefixes of
backbone import and the keys auto-resume compares, without editing any list."""
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.engine.resume import MODEL_DEFINING_KEYS, model_defining_differences, model_defining_keys
from ascnet.modeling import MODEL_REGISTRY
from ascnet.modeling.protocol import PretrainModel, backbone_prefixes
from ascnet.modeling.weights import extract_backbone_state_dict


@MODEL_REGISTRY.register()
class ProtocolToyMethod(PretrainModel):
    """A method whose encoder lives under ``student.encoder.`` and whose lr defines it."""

    BACKBONE_PREFIXES = ("student.encoder.",)
    MODEL_DEFINING_KEYS = ("SOLVER.BASE_LR",)

    def __init__(self, cfg=None):
        super().__init__()
        self.student = nn.Module()
        self.student.encoder = nn.Linear(3, 2)
        self.head = nn.Linear(2, 2)

    @property
    def backbone(self):
        return self.student.encoder


def test_declared_prefix_finds_the_encoder_first():
    assert backbone_prefixes()[:1] != ("backbone.",) and "student.encoder." in backbone_prefixes()
    assert backbone_prefixes()[-2:] == ("backbone.", "encoder.")
    model = ProtocolToyMethod()
    # under DDP the top-level wrapper adds `module.`; the prefix still matches
    state = {"module." + k: v for k, v in model.state_dict().items()}
    got = extract_backbone_state_dict({"model": state})
    assert sorted(got) == ["bias", "weight"]
    torch.testing.assert_close(got["weight"], model.student.encoder.weight)


def test_declared_keys_are_compared_on_resume():
    cfg = get_cfg()
    cfg.MODEL.META_ARCH = "ProtocolToyMethod"
    assert model_defining_keys(cfg) == MODEL_DEFINING_KEYS + ("SOLVER.BASE_LR",)
    stored = cfg.dump()
    cfg.SOLVER.BASE_LR = cfg.SOLVER.BASE_LR * 2
    assert [d[0] for d in model_defining_differences(stored, cfg)] == ["SOLVER.BASE_LR"]
    # ASCNet declares the teacher's keys; a downstream Classifier does not
    for arch, expected in (("ASCNet", ["TEACHER.EMA_BASE"]), ("Classifier", [])):
        cfg = get_cfg()
        cfg.MODEL.META_ARCH = arch
        stored = cfg.dump()
        cfg.TEACHER.EMA_BASE = 0.5
        assert [d[0] for d in model_defining_differences(stored, cfg)] == expected


def test_default_protocol_methods():
    model = ProtocolToyMethod()
    assert model.after_step(0, 10) == {}
    x = torch.randn(4, 3)
    torch.testing.assert_close(model.features(x), model.student.encoder(x))
