"""RingMemoryBank: wrap-around enqueue, own-video exclusion, faiss == torch."""
import pytest
import torch
import torch.nn.functional as F

from ascnet.config import get_cfg
from ascnet.modeling.memory_bank import RingMemoryBank, build_memory_bank


def _cfg(size, search="torch", chunk=8192):
    cfg = get_cfg()
    cfg.MEMORY_BANK.SIZE = size
    cfg.MEMORY_BANK.SEARCH = search
    cfg.MEMORY_BANK.CHUNK_SIZE = chunk
    return cfg


def _feats(ids, dim=4):
    # Row i is a distinct, recognisable direction: value = video id in every coordinate + 1 in
    # coordinate 0 so normalisation does not make different ids equal.
    ids = torch.as_tensor(ids)
    x = torch.zeros(len(ids), dim)
    x[:, 0] = 1.0
    x[:, 1] = ids.float()
    return x


def test_build_from_registry_and_buffers_in_state_dict():
    bank = build_memory_bank(_cfg(5), dim=4)
    assert isinstance(bank, RingMemoryBank)
    sd = bank.state_dict()
    assert set(sd) == {"appearance", "motion", "video_id", "source_id", "ptr", "fill"}
    assert sd["appearance"].shape == (5, 4) and torch.all(sd["video_id"] == -1)
    assert torch.all(sd["source_id"] == -1)


def test_enqueue_wraps_around_with_batch_not_dividing_k():
    bank = RingMemoryBank(_cfg(5), dim=4)
    bank.enqueue(_feats([0, 1, 2]), _feats([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert int(bank.ptr) == 3 and int(bank.fill) == 3
    assert bank.video_id.tolist() == [0, 1, 2, -1, -1]
    bank.enqueue(_feats([3, 4, 5]), _feats([3, 4, 5]), torch.tensor([3, 4, 5]))
    assert int(bank.ptr) == 1 and int(bank.fill) == 5
    assert bank.video_id.tolist() == [5, 1, 2, 3, 4]
    bank.enqueue(_feats([6, 7, 8]), _feats([6, 7, 8]), torch.tensor([6, 7, 8]))
    assert int(bank.ptr) == 4 and int(bank.fill) == 5
    assert bank.video_id.tolist() == [5, 6, 7, 8, 4]
    # contents are the normalised rows of the right videos
    expected = F.normalize(_feats([5, 6, 7, 8, 4]), dim=1)
    assert torch.allclose(bank.appearance, expected)
    assert torch.allclose(bank.motion, expected)
    assert torch.allclose(bank.appearance.norm(dim=1), torch.ones(5))


def test_enqueue_batch_larger_than_bank_keeps_last_k():
    bank = RingMemoryBank(_cfg(4), dim=4)
    bank.enqueue(_feats([0]), _feats([0]), torch.tensor([0]))  # ptr = 1
    ids = torch.arange(10, 17)  # 7 rows: one-by-one would end with ptr (1 + 7) % 4 = 0
    bank.enqueue(_feats(ids), _feats(ids), ids)
    assert int(bank.ptr) == 0 and int(bank.fill) == 4
    # one by one: row i goes to slot (1 + i) % 4; the last writes are rows 3..6 -> slots 0..3
    assert bank.video_id.tolist() == [13, 14, 15, 16]
    assert torch.allclose(bank.appearance, F.normalize(_feats([13, 14, 15, 16]), dim=1))
    bank.enqueue(_feats(ids[:6]), _feats(ids[:6]), ids[:6])  # rows 2..5 -> slots 2, 3, 0, 1
    assert int(bank.ptr) == 2 and bank.video_id.tolist() == [14, 15, 12, 13]


@pytest.mark.parametrize("search", ["torch", "faiss"])
@pytest.mark.parametrize("own", [40, 600])  # 600 > the widest faiss k tried: exact fallback
def test_search_never_returns_own_video_even_when_nearest(search, own):
    dim = 8
    bank = RingMemoryBank(_cfg(own + 10, search, chunk=7), dim=dim)
    g = torch.Generator().manual_seed(0)
    # `own` entries of video 3 that equal the query exactly, plus 10 entries of other videos.
    q = F.normalize(torch.randn(1, dim, generator=g), dim=1)
    others = torch.randn(10, dim, generator=g)
    bank.enqueue(q.repeat(own, 1), q.repeat(own, 1), torch.full((own,), 3))
    bank.enqueue(others, others, torch.arange(100, 110))
    idx, score = bank.search(q, torch.tensor([3]))
    ref = (F.normalize(others, dim=1) @ q[0]).argmax() + own
    assert int(idx) == int(ref)
    assert int(bank.video_id[idx]) != 3
    assert float(score) == pytest.approx(float(bank.appearance[idx] @ q[0]), abs=1e-5)


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_search_no_valid_entry_returns_minus_one(search):
    bank = RingMemoryBank(_cfg(8, search), dim=4)
    idx, score = bank.search(torch.randn(2, 4), torch.tensor([1, 2]))
    assert idx.tolist() == [-1, -1] and torch.isinf(score).all()  # empty bank
    bank.enqueue(_feats([1, 1]), _feats([1, 1]), torch.tensor([1, 1]))
    idx, score = bank.search(torch.randn(2, 4), torch.tensor([1, 2]))
    assert idx[0] == -1 and score[0] == float("-inf")  # only its own video
    assert idx[1] in (0, 1)


def test_faiss_and_torch_return_same_indices():
    dim = 32
    g = torch.Generator().manual_seed(1)
    cfg_t, cfg_f = _cfg(300, "torch", chunk=64), _cfg(300, "faiss")
    bank_t, bank_f = RingMemoryBank(cfg_t, dim), RingMemoryBank(cfg_f, dim)
    for _ in range(4):  # 4 x 97 rows: wraps around a 300-entry bank
        a, m = torch.randn(97, dim, generator=g), torch.randn(97, dim, generator=g)
        vid = torch.randint(0, 30, (97,), generator=g)
        bank_t.enqueue(a, m, vid)
        bank_f.enqueue(a, m, vid)
    # queries are perturbed copies of bank entries, so each query's own video is often the nearest
    q = F.normalize(bank_t.appearance[:50] + 0.05 * torch.randn(50, dim, generator=g), dim=1)
    qvid = bank_t.video_id[:50].clone()
    i_t, s_t = bank_t.search(q, qvid)
    i_f, s_f = bank_f.search(q, qvid)
    assert torch.equal(i_t, i_f)
    assert torch.allclose(s_t, s_f, atol=1e-5)
    assert not torch.any(bank_t.video_id[i_t] == qvid)
    # and the torch result is the exhaustive masked argmax
    sims = q @ bank_t.appearance.T
    sims[bank_t.video_id[None, :] == qvid[:, None]] = float("-inf")
    assert torch.equal(i_t, sims.argmax(dim=1))


def test_bad_enqueue_shapes_raise():
    bank = RingMemoryBank(_cfg(4), dim=4)
    with pytest.raises(ValueError, match="as many"):
        bank.enqueue(torch.randn(3, 4), torch.randn(2, 4), torch.arange(3))


def test_state_dict_round_trip_refreshes_host_pointer_and_fill():
    bank = RingMemoryBank(_cfg(5), dim=4)
    bank.enqueue(_feats([0, 1, 2]), _feats([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([7, 7, 8]))
    fresh = RingMemoryBank(_cfg(5), dim=4)
    fresh.load_state_dict(bank.state_dict())
    assert len(fresh) == 3 and fresh._host_ptr == 3
    assert fresh.source_id.tolist() == [7, 7, 8, -1, -1]
    # The next enqueue continues at the loaded pointer, as in the saved bank.
    for b in (bank, fresh):
        b.enqueue(_feats([3, 4, 5]), _feats([3, 4, 5]), torch.tensor([3, 4, 5]))
    assert torch.equal(bank.video_id, fresh.video_id) and fresh.video_id.tolist() == [5, 1, 2, 3, 4]
    assert int(fresh.ptr) == 1 and int(fresh.fill) == 5 and len(fresh) == 5


def test_checkpoint_without_source_ids_loads_with_each_video_its_own_source():
    bank = RingMemoryBank(_cfg(4), dim=4)
    bank.enqueue(_feats([0, 1]), _feats([0, 1]), torch.tensor([10, 11]))
    old = {k: v for k, v in bank.state_dict().items() if k != "source_id"}  # an older checkpoint
    fresh = RingMemoryBank(_cfg(4), dim=4)
    fresh.load_state_dict(old)
    assert fresh.source_id.tolist() == [10, 11, -1, -1] and len(fresh) == 2


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_search_excludes_every_entry_of_the_query_source(search):
    bank = RingMemoryBank(_cfg(8, search), dim=8)
    g = torch.Generator().manual_seed(5)
    q = F.normalize(torch.randn(1, 8, generator=g), dim=1)
    near = q + 1e-3 * torch.randn(2, 8, generator=g)  # two other videos of the query's source
    far = torch.randn(3, 8, generator=g)
    bank.enqueue(torch.cat([near, far]), torch.cat([near, far]), torch.tensor([1, 2, 3, 4, 5]),
                 torch.tensor([9, 9, 20, 21, 22]))
    idx, _ = bank.search(q, torch.tensor([9]))  # the query: video 0 of source 9
    assert int(bank.source_id[idx]) != 9
    assert int(idx) == int((F.normalize(far, dim=1) @ q[0]).argmax()) + 2


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_search_under_cpu_bf16_autocast_equals_float32_on_near_duplicates(search):
    # Keys closer to each other than bf16 resolves near cosine 1 (~0.004): in bf16 many tie and
    # the lowest slot wins; in float32 the most similar wins.
    dim, k = 64, 200
    g = torch.Generator().manual_seed(6)
    base = F.normalize(torch.randn(1, dim, generator=g), dim=1)
    keys = base + 3e-3 * torch.randn(k, dim, generator=g)
    bank = RingMemoryBank(_cfg(k, search, chunk=64), dim=dim)
    bank.enqueue(keys, keys, torch.arange(k) + 100)
    q = F.normalize(base + 3e-3 * torch.randn(16, dim, generator=g), dim=1)
    qsrc = torch.arange(16)
    ref, _ = bank.search(q, qsrc)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, score = bank.search(q, qsrc)
    assert score.dtype == torch.float32
    assert torch.equal(got, ref)
    assert torch.equal(ref, (q @ bank.appearance.T).argmax(dim=1))
