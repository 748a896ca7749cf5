"""Loaders: resumable sampling, exactly-once evaluation sharding, collation, worker invariance."""
import os

import torch
from torch.utils.data import DataLoader
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import EvalDistributedSampler, ResumableDistributedSampler, build_loader, collate_clips


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_start_iter_yields_exactly_the_tail_of_the_epoch():
    for replicas in (1, 2):
        for rank in range(replicas):
            s = ResumableDistributedSampler(Sized(23), replicas, rank, shuffle=True, seed=5, drop_last=True, batch_size=3)
            s.set_epoch(4)
            full = list(s)
            assert len(full) == len(s) == 23 // replicas
            s.set_epoch(4, start_iter=2)
            assert list(s) == full[6:] and len(s) == len(full) - 6
    s.set_epoch(5)
    assert [i for i, _ in s] != [i for i, _ in full]  # a new ordering each epoch


def test_seeds_depend_on_epoch_and_index_only():
    a = dict(ResumableDistributedSampler(Sized(10), 1, 0, seed=1))
    b = ResumableDistributedSampler(Sized(10), 2, 1, seed=1)
    assert all(a[i] == seed for i, seed in b)
    b.set_epoch(1)
    assert all(a[i] != seed for i, seed in b)


def test_training_shards_are_disjoint_and_cover():
    shards = [[i for i, _ in ResumableDistributedSampler(Sized(10), 2, r, seed=0, drop_last=False)] for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5 and sorted(shards[0] + shards[1]) == list(range(10))


def test_eval_sampler_covers_every_index_once_with_uneven_ranks():
    n = 7
    got = []
    lengths = []
    for rank in range(2):
        s = EvalDistributedSampler(Sized(n), num_replicas=2, rank=rank)
        batches = list(DataLoader(list(range(n)), batch_size=2, sampler=s, drop_last=False))
        got += torch.cat(batches).tolist()
        lengths.append(len(s))
    assert sorted(got) == list(range(n)) and sorted(lengths) == [3, 4]


def test_collate_shapes_and_dtypes():
    batch = [{"clips": torch.zeros(2, 3, 4, 8, 8), "index": i, "label": -1} for i in range(3)]
    out = collate_clips(batch)
    assert out["clips"].shape == (3, 2, 3, 4, 8, 8)
    assert out["index"].dtype == out["label"].dtype == torch.int64 and out["index"].tolist() == [0, 1, 2]


def _dataset(root):
    for k in range(6):
        write_index_video(os.path.join(root, f"v{k}.avi"), 16, offset=k)
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.writelines(f"v{k}.avi {k % 3}\n" for k in range(6))
    return root


def test_samples_do_not_depend_on_workers_and_resume_replays(tmp_path):
    root = _dataset(str(tmp_path))
    batches = {}
    for workers in (0, 2):
        cfg = tiny_cfg(root, TRAIN__DATASET="Kinetics", TRAIN__BATCH_SIZE=2, DATA_LOADER__NUM_WORKERS=workers)
        loader = build_loader(cfg, "train", "pretrain")
        loader.sampler.set_epoch(1)
        batches[workers] = list(loader)
    assert len(batches[0]) == 3
    for a, b in zip(batches[0], batches[2]):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["clips"], b["clips"])
    # Mid-epoch resume: skipping one batch gives exactly the remaining batches.
    loader.sampler.set_epoch(1, start_iter=1)
    assert len(loader) == 2
    for a, b in zip(batches[0][1:], loader):
        assert torch.equal(a["clips"], b["clips"])
    # The two speed clips of a sample are augmented independently.
    clips = augmented(loader.dataset, batches[0][0])[0]
    assert clips.shape == (2, 3, 8, 56, 56) and not torch.equal(clips[0], clips[1])


def test_test_loader_keeps_every_video(tmp_path):
    root = _dataset(str(tmp_path))
    cfg = tiny_cfg(root, TEST__DATASET="Kinetics", TEST__BATCH_SIZE=4, TEST__NUM_SPATIAL_CROPS=1)
    loader = build_loader(cfg, "train", "test")
    out = list(loader)
    assert [b["clips"].shape[:2] for b in out] == [(4, 2), (2, 2)]
    assert torch.cat([b["index"] for b in out]).tolist() == list(range(6))


def test_a_split_smaller_than_one_batch_is_a_clear_error(tmp_path):
    import pytest

    root = _dataset(str(tmp_path))
    cfg = tiny_cfg(root, TRAIN__DATASET="Kinetics", TRAIN__BATCH_SIZE=8)
    with pytest.raises(ValueError, match="TRAIN.BATCH_SIZE"):
        build_loader(cfg, "train", "pretrain")
    assert len(build_loader(cfg, "train", "pretrain", drop_last=False)) == 1
