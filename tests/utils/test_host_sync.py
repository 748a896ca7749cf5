"""HostSyncCounter: every kind of host read is counted, sync-free code counts zero."""
import torch

from ascnet.utils.host_sync import HostSyncCounter


def test_counts_each_kind_of_host_read():
    x = torch.randn(8, 4, requires_grad=True)
    mask = x[:, 0] > 0
    with HostSyncCounter() as syncs:
        _ = x.sum().item()
        _ = bool(mask.any())
        _ = int(mask.sum())
        _ = torch.nonzero(mask)
        _ = x[mask]  # boolean-mask indexing
        _ = x.detach().tolist()
        _ = x.detach().cpu()
        _ = x.detach().to("cpu")
        _ = x.detach().to(x.device)  # a move to the tensor's own device: not a host read
        _ = x.detach().numpy()
    c = syncs.counts
    assert c["aten._local_scalar_dense"] == 3
    assert c["aten.nonzero"] == 1
    assert c["aten.index[mask]"] == 1
    assert c["Tensor.tolist"] == 1 and c["Tensor.cpu"] == 1 and c["Tensor.numpy"] == 1
    assert c["Tensor.to(cpu)"] == 1
    assert syncs.total == 9


def test_sync_free_code_counts_zero_and_the_class_is_restored():
    x = torch.randn(8, 4, requires_grad=True)
    before = {a: torch.Tensor.__dict__.get(a) for a in ("tolist", "cpu", "numpy", "to")}
    with HostSyncCounter() as syncs:
        mask = x[:, 0] > 0
        y = torch.where(mask[:, None], x, torch.zeros_like(x))
        loss = (y * mask[:, None]).sum() / mask.sum().clamp(min=1)
        loss.backward()
        _ = x[torch.arange(4)]  # integer indexing needs no sync
    assert syncs.total == 0, syncs.counts
    assert {a: torch.Tensor.__dict__.get(a) for a in ("tolist", "cpu", "numpy", "to")} == before
    assert x.detach().tolist() is not None
