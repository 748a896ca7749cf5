"""SCP positive samplers."""
import torch
import torch.nn.functional as F

from ascnet.config import get_cfg
from ascnet.modeling.memory_bank import RingMemoryBank
from ascnet.sampling import build_positive_sampler
from ascnet.sampling.positive import AppearanceRetrievalSampler, Gallery, RandomSameSpeedSampler


def _bank(size=16, dim=8, seed=0):
    cfg = get_cfg()
    cfg.MEMORY_BANK.SIZE = size
    cfg.MEMORY_BANK.SEARCH = "torch"
    cfg.MEMORY_BANK.CHUNK_SIZE = 5
    bank = RingMemoryBank(cfg, dim)
    g = torch.Generator().manual_seed(seed)
    bank.enqueue(torch.randn(size, dim, generator=g), torch.randn(size, dim, generator=g), torch.arange(size) % 4)
    return cfg, bank


def test_build_positive_sampler_by_name():
    cfg = get_cfg()
    assert isinstance(build_positive_sampler(cfg), AppearanceRetrievalSampler)
    cfg.ASCNET.POSITIVE_SAMPLER = "random_same_speed"
    assert isinstance(build_positive_sampler(cfg), RandomSameSpeedSampler)


def test_appearance_retrieval_returns_motion_at_retrieved_index():
    cfg, bank = _bank()
    q = F.normalize(torch.randn(5, 8), dim=1)
    qvid = torch.tensor([0, 1, 2, 3, 0])
    pos = build_positive_sampler(cfg)(q, qvid, bank)
    sims = (q @ bank.appearance.T).masked_fill(bank.video_id[None] == qvid[:, None], float("-inf"))
    assert torch.equal(pos.index, sims.argmax(1))
    assert torch.allclose(pos.motion, bank.motion[pos.index])
    assert torch.allclose(pos.similarity, sims.max(1).values, atol=1e-6)
    assert pos.valid.all()


def test_random_same_speed_never_picks_own_video_and_is_reproducible():
    cfg, bank = _bank(size=16)
    cfg.ASCNET.POSITIVE_SAMPLER = "random_same_speed"
    sampler = build_positive_sampler(cfg)
    q = F.normalize(torch.randn(64, 8), dim=1)
    qvid = torch.arange(64) % 4
    seen = set()
    for it in range(20):
        pos = sampler(q, qvid, bank, generator=torch.Generator().manual_seed(it))
        assert pos.valid.all()
        assert not torch.any(bank.video_id[pos.index] == qvid)
        assert torch.allclose(pos.motion, bank.motion[pos.index])
        seen.update(pos.index.tolist())
        again = sampler(q, qvid, bank, generator=torch.Generator().manual_seed(it))
        assert torch.equal(pos.index, again.index)
    assert len(seen) == 16  # every entry is reachable (uniform over other videos' entries)


def test_samplers_on_batch_gallery_and_no_valid_entry():
    app = F.normalize(torch.randn(4, 8), dim=1)
    mot = torch.randn(4, 8)
    gal = Gallery(app, mot, torch.tensor([7, 7, 9, 9]))
    for sampler in (AppearanceRetrievalSampler(), RandomSameSpeedSampler()):
        pos = sampler(app, torch.tensor([7, 7, 9, 9]), gal, generator=torch.Generator().manual_seed(0))
        assert pos.index[:2].tolist() != [0, 1] and set(pos.index[:2].tolist()) <= {2, 3}
        assert set(pos.index[2:].tolist()) <= {0, 1}
        single = Gallery(app[:2], mot[:2], torch.tensor([7, 7]))
        pos = sampler(app[:1], torch.tensor([7]), single, generator=torch.Generator().manual_seed(0))
        assert not pos.valid.any() and pos.index.tolist() == [-1]
        assert torch.all(pos.motion == 0)


def test_samplers_share_the_base_call_and_exclude_the_query_source():
    from ascnet.sampling.positive import PositiveSampler

    for cls in (AppearanceRetrievalSampler, RandomSameSpeedSampler):
        assert issubclass(cls, PositiveSampler) and cls.__call__ is PositiveSampler.__call__
    app = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    gal = Gallery(app, torch.randn(6, 8), torch.tensor([3, 3, 3, 4, 4, 5]))
    for sampler in (AppearanceRetrievalSampler(), RandomSameSpeedSampler()):
        for it in range(5):
            pos = sampler(app, gal.source_id, gal, generator=torch.Generator().manual_seed(it))
            assert pos.valid.all() and not torch.any(gal.source_id[pos.index] == gal.source_id)
            assert torch.equal(pos.motion, gal.motion[pos.index])
