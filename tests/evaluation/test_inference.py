"""Every video is evaluated exactly once: odd batch sizes, one and two processes (gloo)."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ascnet.data.loader import EvalDistributedSampler
from ascnet.evaluation.inference import EvaluationCountError, check_and_order, inference_on_dataset
from ascnet.evaluation.metrics import classification_topk


class ToyVideos(torch.utils.data.Dataset):
    """``clips`` (V, 2) derived from the index, so outputs can be checked per video."""

    def __init__(self, n, views=3):
        self.n, self.views = n, views

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        clips = torch.full((self.views, 2), float(i))
        clips[:, 1] = torch.arange(self.views, dtype=torch.float32)
        return {"clips": clips, "index": i, "label": i % 4}


def _fn(batch):
    # (N, V, 2) -> per-video value index * 10 + mean view id, and a one-hot "probs" of label.
    c = batch["clips"]
    val = c[:, 0, 0] * 10 + c[:, :, 1].mean(1)
    probs = torch.nn.functional.one_hot((c[:, 0, 0].long() % 4), 4).float()
    return {"val": val, "probs": probs}


@pytest.mark.parametrize("n,bs", [(7, 3), (10, 4), (1, 8), (5, 1)])
def test_single_process_every_video_once(n, bs):
    out = inference_on_dataset(_fn, ToyVideos(n), batch_size=bs)
    assert out["index"].tolist() == list(range(n))
    assert torch.equal(out["val"], torch.arange(n, dtype=torch.float32) * 10 + 1.0)
    assert classification_topk(out["probs"], out["label"])["top1"] == 100.0


def test_shard_sampler_has_no_padding():
    shards = [list(EvalDistributedSampler(ToyVideos(10), num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert sum(len(s) for s in shards) == 10


def test_check_and_order_rejects_duplicates_and_missing():
    assert check_and_order(torch.tensor([2, 0, 1]), 3).tolist() == [1, 2, 0]
    with pytest.raises(EvaluationCountError, match="duplicated"):
        check_and_order(torch.tensor([0, 1, 1, 2]), 3)
    with pytest.raises(EvaluationCountError, match="missing"):
        check_and_order(torch.tensor([0, 2]), 3)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, n, bs, result_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        out = inference_on_dataset(_fn, ToyVideos(n), batch_size=bs)
        torch.save(out, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("n,bs", [(7, 4)])
def test_two_processes_every_video_once(tmp_path, n, bs):
    # 7 videos on 2 ranks with 2 per rank per step: uneven shards and a partial last batch.
    mp.spawn(_worker, args=(2, _free_port(), n, bs, str(tmp_path)), nprocs=2, join=True)
    outs = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for out in outs:  # every rank holds the full, ordered, deduplicated result
        assert out["index"].tolist() == list(range(n))
        assert torch.equal(out["val"], torch.arange(n, dtype=torch.float32) * 10 + 1.0)
    assert torch.equal(outs[0]["val"], outs[1]["val"])


def _fn_views(batch):
    # (N, V, 2) -> per-view features (N, V, 64) that identify video and view.
    c = batch["clips"]
    return {"feats": c[:, :, :1] * 100 + c[:, :, 1:2] + torch.arange(64, dtype=torch.float32) / 64}


def _expected_views(n, views):
    i = torch.arange(n, dtype=torch.float32).view(n, 1, 1)
    v = torch.arange(views, dtype=torch.float32).view(1, views, 1)
    return i * 100 + v + torch.arange(64, dtype=torch.float32) / 64


def _tensor_worker(rank, world, port, n, bs, result_dir, chunk_bytes):
    torch.set_num_threads(1)
    if chunk_bytes:  # gather a few rows per collective
        import ascnet.evaluation.inference as inference

        inference.GATHER_CHUNK_BYTES = chunk_bytes
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    pickled = []
    real_gather, real_broadcast = dist.all_gather_object, dist.broadcast_object_list

    def no_object_gather(*a, **k):
        raise AssertionError("evaluation outputs were gathered as pickled objects")

    def recording_broadcast(objs, *a, **k):
        import pickle

        pickled.append(len(pickle.dumps(objs)))
        return real_broadcast(objs, *a, **k)

    dist.all_gather_object, dist.broadcast_object_list = no_object_gather, recording_broadcast
    try:
        out = inference_on_dataset(_fn_views, ToyVideos(n, views=3), batch_size=bs)
        torch.save({"out": out, "pickled": pickled}, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.all_gather_object, dist.broadcast_object_list = real_gather, real_broadcast
        dist.destroy_process_group()


@pytest.mark.parametrize("n,world,bs,chunk_bytes", [(7, 2, 4, 0), (7, 2, 4, 2048), (2, 3, 3, 0)])
def test_processes_gather_tensors_every_video_once(tmp_path, n, world, bs, chunk_bytes):
    # Per-view (N, V, 64) features through the tensor gather: uneven shards, a partial last batch
    # and (2 videos on 3 ranks) a rank with no video at all. Only the outputs' names, shapes and
    # dtypes may travel as a pickled object (a few hundred bytes), never the features. With
    # chunk_bytes the gather moves one or two rows per collective.
    mp.spawn(_tensor_worker, args=(world, _free_port(), n, bs, str(tmp_path), chunk_bytes), nprocs=world, join=True)
    for r in range(world):
        got = torch.load(tmp_path / f"rank{r}.pt")
        out = got["out"]
        assert out["index"].tolist() == list(range(n))
        assert out["label"].tolist() == [i % 4 for i in range(n)]
        assert out["feats"].shape == (n, 3, 64) and out["feats"].dtype == torch.float32
        assert torch.equal(out["feats"], _expected_views(n, 3))
        assert got["pickled"] and max(got["pickled"]) < 1024
