"""ascnet.utils.distributed: the world of one process, and the one DDP-prefix stripper."""
import torch
from torch import nn

from ascnet.utils import distributed as du


def test_single_process_world():
    assert (du.get_rank(), du.get_world_size(), du.is_main_process()) == (0, 1, True)
    du.synchronize()  # a no-op without a process group


def test_strip_ddp_key_removes_wrapper_levels_only():
    assert du.strip_ddp_key("module.backbone.w") == "backbone.w"
    assert du.strip_ddp_key("online.module.backbone.w", ("online.",)) == "online.backbone.w"
    # Nested wrappers (DDP around the model and around its online child) all go.
    assert du.strip_ddp_key("module.online.module.backbone.w", ("", "online.")) == "online.backbone.w"
    # A real submodule called "module" deeper in the model stays.
    assert du.strip_ddp_key("head.module.w", ("", "online.")) == "head.module.w"


def test_strip_ddp_key_matches_a_wrapped_state_dict():
    net = nn.Sequential(nn.Linear(2, 2))
    wrapped = nn.DataParallel(net)
    assert [du.strip_ddp_key(k) for k in wrapped.state_dict()] == list(net.state_dict())
    assert torch.equal(wrapped.state_dict()["module.0.weight"], net.state_dict()["0.weight"])
