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


def _gather_worker(rank, world, port, out_dir):
    import os

    import torch.distributed as dist

    from ascnet.utils.host_sync import HostSyncCounter

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        feats = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(rank))
        ids = torch.tensor([2**40 + rank, -1, 7 * rank])  # int64 values a float could not hold
        flags = torch.tensor([True, False, rank == 1])
        with HostSyncCounter() as syncs:
            packed = du.all_gather_packed((feats, ids, flags), equal_sizes=True)
        plain = [du.all_gather_cat(t) for t in (feats, ids, flags)]
        uneven = du.all_gather_cat(torch.full((rank + 1, 2), float(rank)))
        torch.save({"packed": packed, "plain": plain, "uneven": uneven, "syncs": dict(syncs.counts)},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_packed_gather_is_bit_exact_and_sync_free(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        out = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert out["syncs"] == {}  # equal sizes: no size exchange, no host read
        for got, ref in zip(out["packed"], out["plain"]):
            assert got.dtype == ref.dtype and torch.equal(got, ref)
        feats, ids, flags = out["packed"]
        assert feats.shape == (6, 2, 5) and ids.tolist() == [2**40, -1, 0, 2**40 + 1, -1, 7]
        assert flags.tolist() == [True, False, False, True, False, True]
        assert out["uneven"].tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]


def test_packed_gather_alone_is_the_identity():
    a, b = torch.randn(2, 3), torch.arange(2)
    assert all(x is y for x, y in zip(du.all_gather_packed((a, b), equal_sizes=True), (a, b)))
