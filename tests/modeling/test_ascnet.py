"""ASCNet meta-architecture: EMA, losses against hand computations, gradients, banks, DDP."""
import copy
import math
import os
import socket
import tempfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling.losses import ACPLoss, normalized_mse
from ascnet.modeling.meta_arch import build_model
from ascnet.modeling.meta_arch.ascnet import ASCNet, ema_momentum  # noqa: F401  (registers ASCNet)
from ascnet.sampling.positive import Gallery

N, S, C, T, H = 4, 2, 3, 8, 32


def tiny_cfg(**overrides):
    cfg = get_cfg()
    cfg.MODEL.META_ARCH = "ASCNet"
    cfg.MODEL.BACKBONE.NAME = "R3D18"
    cfg.MODEL.BACKBONE.WIDTHS = [8, 16, 16, 32]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 8
    cfg.MODEL.PROJECTION.HIDDEN_DIM = 32
    cfg.MODEL.PROJECTION.OUT_DIM = 16
    cfg.MODEL.PREDICTOR.HIDDEN_DIM = 32
    cfg.MEMORY_BANK.SIZE = 10
    cfg.MEMORY_BANK.SEARCH = "torch"
    cfg.TRAIN.BATCH_SIZE = N
    for k, v in overrides.items():
        node = cfg
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return cfg


def make_batch(n=N, s=S, seed=0, offset=0):
    g = torch.Generator().manual_seed(seed)
    return {"clips": torch.randn(n, s, C, T, H, H, generator=g), "index": torch.arange(n) + offset}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_cfg())


def test_ema_schedule_endpoints():
    assert ema_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert ema_momentum(0.996, 100, 100) == pytest.approx(1.0)
    assert ema_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert ema_momentum(0.9, 25, 100) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)


def test_structure_and_target_frozen(model):
    online, target = model.online, model.target
    assert set(n for n, _ in online.named_children()) == {"backbone", "proj_a", "proj_m", "pred_a", "pred_m"}
    assert set(n for n, _ in target.named_children()) == {"backbone", "proj_a", "proj_m"}
    assert all(not p.requires_grad for p in target.parameters())
    for (n1, p1), (n2, p2) in zip(online.backbone.named_parameters(), target.backbone.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2) and p1.data_ptr() != p2.data_ptr()
    assert len(model.banks) == 2 and model.banks[0].appearance.shape == (10, 16)


def test_after_step_equals_formula_on_known_tensors():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"TEACHER.EMA_BASE": 0.9}))
    with torch.no_grad():
        for i, p in enumerate(m.online.parameters()):
            p.fill_(float(i % 5))
        for p in m.target.parameters():
            p.fill_(10.0)
        for b in m.online.buffers():
            if b.dtype.is_floating_point:
                b.fill_(3.5)
    online = dict(m.online.named_parameters())
    out = m.after_step(0, 8)
    assert out["ema_tau"] == pytest.approx(0.9)
    for name, p in m.target.named_parameters():
        expected = 0.9 * 10.0 + 0.1 * online[name]
        assert torch.allclose(p, expected), name
    for name, b in m.target.named_buffers():
        if b.dtype.is_floating_point:
            assert torch.all(b == 3.5), name
    before = [p.clone() for p in m.target.parameters()]
    out = m.after_step(8, 8)  # tau = 1 at the end: no change
    assert out["ema_tau"] == pytest.approx(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, m.target.parameters()))
    assert int(m.iteration) == 9


def _reference_losses(m, batch):
    """Recompute ACP and SCP by hand from the online / target networks (bank empty)."""
    clips, vid = batch["clips"], batch["index"]
    n, s = clips.shape[:2]
    flat = clips.flatten(0, 1)
    with torch.no_grad():
        pa, pm = m.online(flat)
        za, zm = m.target(flat)
    pa, pm = pa.view(n, s, -1), pm.view(n, s, -1)
    za, zm = F.normalize(za, dim=1).view(n, s, -1), F.normalize(zm, dim=1).view(n, s, -1)
    # Per-clip mean: one term per clip (2N clips), half the summed two-direction form.
    acp = torch.cat([normalized_mse(pa[:, 0], za[:, 1]), normalized_mse(pa[:, 1], za[:, 0])]).mean()
    scp_terms, sims = [], []
    for si in range(s):
        for i in range(n):
            best, best_j = -float("inf"), None
            for j in range(n):
                if vid[j] == vid[i]:
                    continue
                d = float(za[i, si] @ za[j, si])
                if d > best:
                    best, best_j = d, j
            sims.append(best)
            scp_terms.append(normalized_mse(pm[i, si][None], zm[best_j, si][None])[0])
    return acp, torch.stack(scp_terms).mean(), sum(sims) / len(sims), za, zm


def test_forward_losses_equal_hand_computation_and_bank_filled():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.ACP_WEIGHT": 0.5, "ASCNET.SCP_WEIGHT": 2.0}))
    batch = make_batch()
    # BatchNorm in train mode: the same batch gives the same outputs in both passes.
    acp, scp, pos_sim, za, zm = _reference_losses(m, batch)
    out = m(batch)
    assert out["loss_acp"].item() == pytest.approx(0.5 * acp.item(), abs=1e-5)
    assert out["loss_scp"].item() == pytest.approx(2.0 * scp.item(), abs=1e-5)
    assert out["acp"].item() == pytest.approx(acp.item(), abs=1e-5)
    assert out["pos_sim"].item() == pytest.approx(pos_sim, abs=1e-5)
    assert out["scp_from_bank"].item() == 0.0  # bank empty: positives from the batch
    assert out["bank_fill"].item() == N
    for si, bank in enumerate(m.banks):
        assert int(bank.fill) == N and bank.video_id[:N].tolist() == list(range(N))
        assert torch.allclose(bank.appearance[:N], za[:, si], atol=1e-5)
        assert torch.allclose(bank.motion[:N], zm[:, si], atol=1e-5)
    assert not any(v.requires_grad for k, v in out.items() if not k.startswith("loss"))


def test_default_weighted_total_equals_the_summed_acp_objective():
    # ACP_WEIGHT 2.0 on the per-clip mean = weight 1 on the method's formula, which sums the two
    # directions per video: the objective trained before the per-clip change, unchanged.
    torch.manual_seed(0)
    m = build_model(tiny_cfg())
    assert m.acp_weight == 2.0 and m.scp_weight == 1.0
    batch = make_batch()
    _, scp, _, _, _ = _reference_losses(m, batch)
    flat = batch["clips"].flatten(0, 1)
    with torch.no_grad():
        pa, _ = m.online(flat)
        za, _ = m.target(flat)
    pa, za = pa.view(N, S, -1), za.view(N, S, -1)
    summed_acp = (normalized_mse(pa[:, 0], za[:, 1]) + normalized_mse(pa[:, 1], za[:, 0])).mean()
    out = m(batch)
    assert out["loss_acp"].item() == pytest.approx(summed_acp.item(), abs=1e-5)
    total = out["loss_acp"] + out["loss_scp"]
    assert total.item() == pytest.approx((summed_acp + scp).item(), abs=1e-5)


def test_positives_from_bank_once_filled_never_own_video():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.BANK_MIN_FILL": 6}))
    m(make_batch(seed=0, offset=0))  # fill 4 < 6: from the batch
    out = m(make_batch(seed=1, offset=0))  # fill 4 before the search: still the batch
    assert out["scp_from_bank"].item() == 0.0
    # Now 8 entries (videos 0..3 twice): the bank serves every query, never its own video.
    q = F.normalize(torch.randn(N, 16), dim=1)
    pos, from_bank = m._positives(0, q, torch.arange(N), _gallery(q))
    assert from_bank.all()
    assert not torch.any(m.banks[0].video_id[pos.index] == torch.arange(N))
    out = m(make_batch(seed=2, offset=0))
    assert out["scp_from_bank"].item() == 1.0


def _gallery(q):
    from ascnet.sampling.positive import Gallery

    return Gallery(q, q, torch.arange(q.shape[0]))


def test_bank_rows_without_valid_entry_fall_back_to_batch():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.BANK_MIN_FILL": 1}))
    bank = m.banks[0]
    bank.enqueue(torch.randn(3, 16), torch.randn(3, 16), torch.tensor([0, 0, 0]))  # only video 0
    q = F.normalize(torch.randn(2, 16), dim=1)
    from ascnet.sampling.positive import Gallery

    batch = Gallery(q, torch.randn(2, 16), torch.tensor([0, 1]))
    pos, from_bank = m._positives(0, q, torch.tensor([0, 1]), batch)
    assert from_bank.tolist() == [False, True]
    assert pos.valid.all()
    assert torch.allclose(pos.motion[0], batch.motion[1])  # video 0: the batch's other video
    assert int(bank.video_id[pos.index[1]]) == 0


def test_gradients_reach_online_only():
    torch.manual_seed(0)
    m = build_model(tiny_cfg())
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    target_before = [p.clone() for p in m.target.parameters()]
    for it in range(2):  # the second step uses the bank (BANK_MIN_FILL = one batch)
        out = m(make_batch(seed=it))
        opt.zero_grad()
        (out["loss_acp"] + out["loss_scp"]).backward()
        assert all(p.grad is None for p in m.target.parameters())
        for head in (m.online.pred_a, m.online.pred_m, m.online.proj_a, m.online.proj_m, m.online.backbone):
            assert all(p.grad is not None for p in head.parameters())
            assert sum(p.grad.abs().sum() for p in head.parameters()) > 0
        opt.step()
        assert all(torch.equal(a, b) for a, b in zip(target_before, m.target.parameters()))
    assert out["scp_from_bank"].item() == 1.0
    assert m.after_step(0, 10)["ema_tau"] == pytest.approx(0.996)
    assert not all(torch.equal(a, b) for a, b in zip(target_before, m.target.parameters()))


def test_three_speeds_and_eval_features():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"DATA.SPEEDS": [1, 2, 4]}))
    batch = make_batch(s=3)
    out = m(batch)
    assert len(m.banks) == 3 and all(int(b.fill) == N for b in m.banks)
    flat = batch["clips"].flatten(0, 1)
    with torch.no_grad():
        pa, _ = m.online(flat)
        za, _ = m.target(flat)
    ref = ACPLoss()(pa.view(N, 3, -1), za.view(N, 3, -1))
    assert out["acp"].item() == pytest.approx(ref.item(), abs=1e-5)
    m.eval()
    assert not m.target.training
    feats = m({"clips": batch["clips"]})["features"]
    assert feats.shape == (N, 3, 32)
    assert m({"clips": batch["clips"][:, 0]})["features"].shape == (N, 32)
    with pytest.raises(ValueError, match="DATA.SPEEDS"):
        m.train()(make_batch(s=2))


def test_target_bn_mode():
    m = build_model(tiny_cfg())
    assert m.target.training
    m2 = build_model(tiny_cfg(**{"TEACHER.BN_MODE": "eval"}))
    assert m2.training and not m2.target.training and m2.online.training


def test_random_same_speed_reproducible_per_iteration():
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.POSITIVE_SAMPLER": "random_same_speed", "MEMORY_BANK.SIZE": 64}))
    for it in range(3):
        m(make_batch(seed=it, offset=10 * it))
    q = F.normalize(torch.randn(N, 16), dim=1)
    qv = torch.arange(N)
    a, _ = m._positives(0, q, qv, _gallery(q))
    b, _ = m._positives(0, q, qv, _gallery(q))
    assert torch.equal(a.index, b.index)
    assert not torch.any(m.banks[0].video_id[a.index] == qv)
    draws = set()
    for it in range(5):
        m.after_step(it, 100)  # iteration it + 1 (buffer and host mirror)
        assert int(m.iteration) == it + 1
        draws.add(tuple(m._positives(0, q, qv, _gallery(q))[0].index.tolist()))
    assert len(draws) > 1


def test_state_dict_keys_independent_of_wrapping():
    torch.manual_seed(0)
    m = build_model(tiny_cfg())
    keys = set(m.state_dict())
    assert any(k.startswith("online.backbone.") for k in keys)
    assert {"banks.0.ptr", "banks.1.fill", "iteration"} <= keys
    m.wrap_ddp(nn.DataParallel)  # stands in for DDP: same `.module` layout, works on CPU
    assert isinstance(m.online, nn.DataParallel)
    sd = m.state_dict()
    assert set(sd) == keys
    fresh = build_model(tiny_cfg())
    fresh.wrap_ddp(nn.DataParallel)
    fresh.load_state_dict(sd)
    plain = build_model(tiny_cfg())
    plain.load_state_dict(sd)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert m.backbone is m.online.module.backbone


# ----------------------------------------------------------------------------------------------
# Float32 positives under AMP, source exclusion, no host synchronisation
# ----------------------------------------------------------------------------------------------
def _near_duplicates(n, dim, seed, eps=3e-3):
    g = torch.Generator().manual_seed(seed)
    base = F.normalize(torch.randn(1, dim, generator=g), dim=1)
    return F.normalize(base + eps * torch.randn(n, dim, generator=g), dim=1)


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_positives_under_cpu_bf16_autocast_equal_float32_on_near_duplicate_keys(search):
    # Keys and queries closer than bf16 resolves near cosine 1: in bf16 many tie and the lowest
    # row wins (ring position), in float32 the most similar one does. Both the bank search (the
    # configured backend) and the in-batch search (while the bank fills) are checked.
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"MEMORY_BANK.SEARCH": search, "MEMORY_BANK.SIZE": 256,
                                "ASCNET.BANK_MIN_FILL": 256}))
    d = 16
    keys = _near_duplicates(256 + 12, d, seed=1)
    q, qsrc = keys[256:], torch.arange(12) + 10_000
    batch = Gallery(keys[:64], torch.randn(64, d), torch.arange(64))
    for filled in (False, True):
        if filled:
            m.banks[0].enqueue(keys[:256], torch.randn(256, d), torch.arange(256))
        ref, ref_bank = m._positives(0, q, qsrc, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, got_bank = m._positives(0, q, qsrc, batch)
        assert torch.equal(got_bank, ref_bank) and bool(ref_bank.all()) == filled
        assert torch.equal(got.index, ref.index) and torch.equal(got.motion, ref.motion)
        assert got.similarity.dtype == torch.float32
        gallery = m.banks[0].appearance if filled else batch.appearance
        best = (q @ gallery.T).argmax(dim=1)
        if filled:
            assert torch.equal(ref.index, best)
        else:
            assert torch.equal(ref.motion, batch.motion[best])


def test_forward_losses_under_cpu_bf16_autocast_equal_float32_given_the_same_features():
    # The networks may run in bf16; everything after them (losses, positives) must not.
    torch.manual_seed(0)
    m = build_model(tiny_cfg())
    n, d = 8, 16
    pa, pm = torch.randn(n, S, d), torch.randn(n, S, d)
    za = _near_duplicates(n * S, d, seed=2).view(n, S, d)
    zm = _near_duplicates(n * S, d, seed=3).view(n, S, d)

    class Fixed(nn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.a, self.b, self.w = a, b, nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.a.flatten(0, 1) * self.w, self.b.flatten(0, 1) * self.w

    m.online, m.target = Fixed(pa, pm), Fixed(za, zm)
    batch = make_batch(n=n)
    m.banks[0].enqueue(_near_duplicates(10, d, seed=4), torch.randn(10, d), torch.arange(10) + 50)
    m_amp = copy.deepcopy(m)  # the same banks for both runs
    ref = m(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m_amp(batch)
    for k in ("loss_acp", "loss_scp", "pos_sim"):
        assert got[k].dtype == torch.float32, k
        assert got[k].item() == pytest.approx(ref[k].item(), abs=1e-5), k


def _twin_batch(seed=0):
    # Videos 0 and 1 are identical clips (so identical features: each other's nearest), and so
    # are videos 2 and 3.
    b = make_batch(seed=seed)
    b["clips"][1], b["clips"][3] = b["clips"][0], b["clips"][2]
    return b


@pytest.mark.parametrize("sampler", ["appearance_retrieval", "random_same_speed"])
def test_two_videos_of_one_source_are_never_each_others_positive(sampler):
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.POSITIVE_SAMPLER": sampler, "MEMORY_BANK.SIZE": 8}))
    batch = _twin_batch()
    batch["source"] = torch.tensor([5, 5, 6, 6])
    out = m(batch)  # the in-batch search: the twin is excluded, only the other pair remains
    assert out["pos_sim"].item() < 0.99
    for bank in m.banks:
        assert bank.source_id[:N].tolist() == [5, 5, 6, 6] and bank.video_id[:N].tolist() == [0, 1, 2, 3]
    # The bank search: queries of source 5 never get an entry of source 5.
    for _ in range(3):
        m(batch)
    q = F.normalize(m.banks[0].appearance[:2].clone(), dim=1)
    pos, from_bank = m._positives(0, q, torch.tensor([5, 5]), _gallery(q))
    assert from_bank.all() and torch.all(m.banks[0].source_id[pos.index] == 6)
    if sampler == "appearance_retrieval":
        # Without source ids each video is its own source: the twin is then the nearest.
        torch.manual_seed(0)
        m2 = build_model(tiny_cfg(**{"MEMORY_BANK.SIZE": 8}))
        plain = _twin_batch()
        assert m2(plain)["pos_sim"].item() == pytest.approx(1.0, abs=1e-4)
        assert m2.banks[0].source_id[:N].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("sampler", ["appearance_retrieval", "random_same_speed"])
def test_training_forward_and_backward_make_no_host_sync(sampler):
    from ascnet.utils.host_sync import HostSyncCounter

    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"ASCNET.POSITIVE_SAMPLER": sampler, "MEMORY_BANK.SIZE": 10}))
    counts = []
    for it in range(5):  # fill 0 -> 4 -> 8 -> 10 (full) -> 10: filling, then full
        batch = make_batch(seed=it, offset=N * it)
        batch["source"] = batch["index"] // 2
        with HostSyncCounter() as syncs:
            out = m(batch)
            (out["loss_acp"] + out["loss_scp"]).backward()
            m.after_step(it, 5)
        counts.append(dict(syncs.counts))
    assert counts == [{}] * 5, counts
    assert out["scp_from_bank"].item() == 1.0 and len(m.banks[0]) == 10


# ----------------------------------------------------------------------------------------------
# Two-process gloo DDP
# ----------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)  # different init per rank, as a launcher seeding seed + rank
        m = build_model(tiny_cfg(**{"MEMORY_BANK.SIZE": 7, "TRAIN.BATCH_SIZE": 2 * world}))
        m.wrap_ddp(lambda mod: nn.parallel.DistributedDataParallel(mod))
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
        for it in range(3):
            # different data and video ids on each rank
            out = m(make_batch(n=2, seed=1000 * rank + it, offset=100 * rank + 2 * it))
            opt.zero_grad()
            (out["loss_acp"] + out["loss_scp"]).backward()
            opt.step()
            m.after_step(it, 3)
        state = {k: v for k, v in m.state_dict().items()}
        state["_scp_from_bank"] = out["scp_from_bank"]
        state["_acp"] = out["acp"]
        torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_keep_banks_and_weights_identical():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(2, _free_port(), d), nprocs=2, join=True)
        s0 = torch.load(os.path.join(d, "rank0.pt"), weights_only=True)
        s1 = torch.load(os.path.join(d, "rank1.pt"), weights_only=True)
    assert s0["_scp_from_bank"].item() == 1.0  # later iterations used the bank
    # Banks: 3 iterations x 2 ranks x 2 clips = 12 entries through a 7-entry ring.
    assert int(s0["banks.0.fill"]) == 7 and int(s0["banks.0.ptr"]) == 12 % 7
    # The last global batch (ids 4, 5 of rank 0 then 104, 105 of rank 1) sits before the pointer.
    assert s0["banks.0.video_id"].tolist()[1:5] == [4, 5, 104, 105]
    for k in s0:
        if k.startswith(("online.", "target.", "banks.")) and not ("running_" in k or "num_batches" in k):
            assert torch.allclose(s0[k], s1[k], atol=1e-6), k
    # the ranks did see different data: their local losses differ
    assert s0["_acp"].item() != pytest.approx(s1["_acp"].item(), abs=1e-6)


@pytest.mark.parametrize("sampler", ["appearance_retrieval", "random_same_speed"])
def test_resume_from_state_dict_replays_the_next_step_exactly(sampler):
    cfg = tiny_cfg(**{"ASCNET.POSITIVE_SAMPLER": sampler, "MEMORY_BANK.SIZE": 6})

    def step(m, opt, it):
        out = m(make_batch(seed=it, offset=3 * it))
        opt.zero_grad()
        (out["loss_acp"] + out["loss_scp"]).backward()
        opt.step()
        m.after_step(it, 10)
        return out

    torch.manual_seed(0)
    a = build_model(cfg)
    opt_a = torch.optim.SGD([p for p in a.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for it in range(3):
        step(a, opt_a, it)
    saved_model, saved_opt = a.state_dict(), copy.deepcopy(opt_a.state_dict())  # as a file would
    saved_model = {k: v.clone() for k, v in saved_model.items()}

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    b = build_model(cfg)
    b.load_state_dict(saved_model)
    opt_b = torch.optim.SGD([p for p in b.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    opt_b.load_state_dict(saved_opt)
    out_a, out_b = step(a, opt_a, 3), step(b, opt_b, 3)
    for k in ("loss_acp", "loss_scp", "pos_sim"):
        assert torch.equal(out_a[k], out_b[k]), k
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("search", ["torch", "faiss"])
@pytest.mark.parametrize("sampler", ["appearance_retrieval", "random_same_speed"])
def test_cuda_steps_with_amp(search, sampler):
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**{"MEMORY_BANK.SEARCH": search, "ASCNET.POSITIVE_SAMPLER": sampler})).cuda()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    for it in range(3):
        batch = {k: v.cuda() for k, v in make_batch(seed=it, offset=N * it).items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = m(batch)
        opt.zero_grad()
        (out["loss_acp"] + out["loss_scp"]).backward()
        opt.step()
        m.after_step(it, 3)
        assert torch.isfinite(out["loss_acp"]) and torch.isfinite(out["loss_scp"])
    assert out["scp_from_bank"].item() == 1.0
    assert m.banks[0].appearance.is_cuda and int(m.banks[0].fill) == 10
    idx, _ = m.banks[0].search(m.banks[1].appearance[:4], torch.arange(4, device="cuda"))
    assert not torch.any(m.banks[0].video_id[idx] == torch.arange(4, device="cuda"))
