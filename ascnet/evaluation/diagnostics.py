"""Motion diagnostics of an encoder: does it read motion, or appearance? (docs/evaluation.md)

* **Static-bias probe** (:func:`static_bias_probe`): retrieval top-1 and kNN top-1 of the query
  videos again, with the frames of each query clip shuffled in time (``shuffle``) and with one
  frame repeated over the clip (``repeat``: appearance kept, motion gone), against the
  unchanged gallery; the drops from the clean figures are reported. A representation that uses
  motion drops; one that reads appearance from single frames does not (the idea of Kowal et al.,
  CVPR 2022, and of appearance-free benchmarks such as AFD101).
* **Speed probe** (:func:`speed_probe`): how well the playback speed of a clip (each of
  ``DATA.SPEEDS``) can be read from frozen features: a cached linear probe
  (:func:`ascnet.evaluation.linear_probe.fit_probe`, L2 chosen on held-out training videos)
  fit on the clips of the gallery (training) videos and scored per clip on the query (held-out)
  videos; chance is 1 / number of speeds.
* **Per-factor top-1** (:func:`factor_top1`): for datasets whose classes are built from factors
  (the generated ``direction_speed`` preset), whether the nearest gallery video shares each
  factor of the query, beside chance.

Every perturbation is a deterministic function of the video index and a seed, so the figures do
not depend on the number of processes or workers.
"""
import logging
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .inference import inference_on_dataset
from .knn import retrieval_chance
from .linear_probe import fit_probe, standardise
from .retrieval import evaluate_retrieval, extract_video_features, finalize_features

logger = logging.getLogger(__name__)

# The time perturbations of the static-bias probe.
PERTURBATIONS = ("shuffle", "repeat")
# The values of RETRIEVAL.DIAGNOSTICS / TRAIN.MONITOR_DIAGNOSTICS.
DIAGNOSTICS = ("static_bias", "speed")


def check_diagnostics(names: Sequence[str], key: str) -> None:
    """Raise ValueError naming ``key`` when a name is not one of :data:`DIAGNOSTICS`."""
    bad = [n for n in names if n not in DIAGNOSTICS]
    if bad:
        raise ValueError(f"{key} has {bad}; choose among {list(DIAGNOSTICS)}.")


# ------------------------------------------------------------------------------------------------
# Static-bias probe
# ------------------------------------------------------------------------------------------------
def perturb_time(clips: torch.Tensor, mode: str, index: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Shuffle the frames of each clip, or repeat one frame over it.

    Args:
        clips: (N, V, C, T, H, W) views of N videos.
        mode: ``"shuffle"`` (a permutation of the T frames drawn per view from ``(seed, video
            index)``, never the identity when T > 1) or ``"repeat"`` (the middle frame, T times).
        index: (N,) video indices (seed the permutations).
        seed: the probe's seed.

    Returns:
        (N, V, C, T, H, W) perturbed views.
    """
    n, v, _, t = clips.shape[:4]
    if mode == "repeat":
        return clips[:, :, :, t // 2 : t // 2 + 1].expand_as(clips).contiguous()
    if mode != "shuffle":
        raise ValueError(f"Unknown time perturbation {mode!r}; choose one of {list(PERTURBATIONS)}.")
    perms = []
    for i in index.tolist():
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))
        for _ in range(v):
            p = torch.randperm(t, generator=g)
            if t > 1 and torch.equal(p, torch.arange(t)):
                p = p.roll(1)  # the identity would measure nothing
            perms.append(p)
    perm = torch.stack(perms).view(n, v, 1, t, 1, 1).to(clips.device)
    return torch.gather(clips, 3, perm.expand_as(clips))


def static_bias_probe(
    backbone: torch.nn.Module,
    query_dataset,
    clean_query: torch.Tensor,
    gallery: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    center: bool,
    knn_ks: Sequence[int] = (),
    knn_temperature: float = 0.07,
    batch_size: int = 8,
    num_workers: int = 0,
    device: Optional[torch.device] = None,
    seed: int = 0,
    modes: Sequence[str] = PERTURBATIONS,
) -> Dict[str, float]:
    """Retrieval and kNN top-1 with perturbed query clips, and their drops from the clean ones.

    Args:
        backbone: (N, C, T, H, W) -> (N, D), in eval mode.
        query_dataset: the test-mode dataset the clean query features came from.
        clean_query: (Q, D) pooled clean query features (before :func:`finalize_features`).
        gallery: (G, D) pooled gallery features (idem).
        query_labels, gallery_labels: (Q,), (G,) int64.
        center: ``RETRIEVAL.CENTER``.
        knn_ks, knn_temperature: the kNN classifier's (``RETRIEVAL.KNN_*``).
        seed: seeds the shuffles.
        modes: a subset of :data:`PERTURBATIONS`.

    Returns:
        ``{"<mode>_top1", "<mode>_knn<k>_top1", "<mode>_drop_top1", "<mode>_drop_knn<k>_top1"}``
        in percent; a drop is clean minus perturbed (positive: the perturbation hurt).
    """
    qf, gf = finalize_features(clean_query, gallery, center)
    clean = _top1s(qf, gf, query_labels, gallery_labels, knn_ks, knn_temperature)
    out: Dict[str, float] = {}
    for mode in modes:
        pq = extract_video_features(
            backbone, query_dataset, batch_size, num_workers=num_workers, device=device,
            transform=lambda clips, index, mode=mode: perturb_time(clips, mode, index, seed),
        )[0]
        pqf, _ = finalize_features(pq, gallery, center)
        res = _top1s(pqf, gf, query_labels, gallery_labels, knn_ks, knn_temperature)
        for k, v in res.items():
            out[f"{mode}_{k}"] = v
            out[f"{mode}_drop_{k}"] = clean[k] - v
    return out


def _top1s(qf, gf, ql, gl, knn_ks, knn_temperature) -> Dict[str, float]:
    res = evaluate_retrieval(qf, gf, ql, gl, topk=(1,), backend="torch", knn_ks=knn_ks, knn_temperature=knn_temperature)
    return {k: float(v) for k, v in res.items() if k == "top1" or k.startswith("knn")}


# ------------------------------------------------------------------------------------------------
# Speed probe
# ------------------------------------------------------------------------------------------------
def speed_clips(clips: torch.Tensor, speeds: Sequence[int], num_frames: int) -> torch.Tensor:
    """Clips of ``num_frames`` frames at each playback speed, from views of ``num_frames *
    max(speeds)`` consecutive (sampled) frames: speed s keeps every s-th frame from the start.

    Args:
        clips: (N, V, C, T', H, W) with T' >= num_frames * max(speeds).

    Returns:
        (N, S, V, C, num_frames, H, W).
    """
    need = int(num_frames) * max(int(s) for s in speeds)
    if clips.shape[3] < need:
        raise ValueError(f"The speed probe needs views of {need} frames, got {clips.shape[3]}.")
    return torch.stack([clips[:, :, :, : need : int(s)][:, :, :, :num_frames] for s in speeds], dim=1)


def extract_speed_features(
    encoders: Mapping[str, torch.nn.Module], dataset, speeds: Sequence[int], num_frames: int, batch_size: int,
    num_workers: int = 0, device: Optional[torch.device] = None,
) -> Dict[str, torch.Tensor]:
    """L2-normalised features of every view of every video at each speed, for each encoder.

    Args:
        encoders: name -> (N, C, T, H, W) -> (N, D) modules in eval mode (e.g. the backbone, and
            backbone + motion projection).
        dataset: test-mode dataset whose views hold ``num_frames * max(speeds)`` frames.

    Returns:
        name -> (len(dataset), S, V, D) float32, and ``"label"`` -> (len(dataset),).
    """

    def fn(batch):
        x = speed_clips(batch["clips"], speeds, num_frames)  # (N, S, V, C, T, H, W)
        n, s, v = x.shape[:3]
        flat = x.flatten(0, 2)
        return {k: F.normalize(m(flat).float(), dim=-1).view(n, s, v, -1) for k, m in encoders.items()}

    out = inference_on_dataset(fn, dataset, batch_size, num_workers=num_workers, device=device)
    return {k: v for k, v in out.items() if k != "index"}


def speed_probe(
    train_feats: torch.Tensor, test_feats: torch.Tensor, l2_values: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    seed: int = 0, max_iter: int = 200,
) -> Dict[str, float]:
    """Linear read-out of the playback speed, fit on training videos, scored on held-out ones.

    Args:
        train_feats: (N, S, V, D) features of V views at each of S speeds of N training videos.
        test_feats: (M, S, V, D) the same for held-out videos.
        l2_values: the L2 sweep (chosen on held-out training videos).

    Returns:
        ``{"speed_probe_top1": % of held-out clips whose speed is read right,
        "speed_probe_chance": 100 / S, "speed_probe_l2": the chosen penalty}``.
    """
    n, s, v, d = train_feats.shape
    # Each (video, speed) is one probe sample with V views, labelled by the speed's position.
    labels = torch.arange(s).repeat(n)
    probe = fit_probe(train_feats.reshape(n * s, v, d), labels, s, l2_values, seed=seed, max_iter=max_iter)
    m = test_feats.shape[0]
    z = standardise(test_feats.reshape(m * s * v, d), probe["mean"], probe["var"])
    pred = F.linear(z, probe["weight"], probe["bias"]).argmax(dim=1)
    truth = torch.arange(s).repeat_interleave(v).repeat(m)
    return {"speed_probe_top1": float((pred == truth).double().mean() * 100.0), "speed_probe_chance": 100.0 / s,
            "speed_probe_l2": float(probe["l2"])}


# ------------------------------------------------------------------------------------------------
# Factors
# ------------------------------------------------------------------------------------------------
def factor_top1(
    neighbors: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor,
    factors: Mapping[str, Tuple[Sequence[str], Sequence[int]]],
) -> Dict[str, float]:
    """Top-1 per factor: the nearest gallery video shares the query's value of the factor.

    Args:
        neighbors: (Q, k) gallery indices, nearest first.
        query_labels, gallery_labels: (Q,), (G,) class numbers.
        factors: ``{factor: (value names, value of each class)}``
            (:func:`ascnet.data.synthetic_render.class_factors`).

    Returns:
        ``{"factor_<factor>_top1": %, "factor_<factor>_chance": %}`` (chance of the nearest video
        sharing the value, from the label counts).
    """
    out: Dict[str, float] = {}
    for name, (_, values) in factors.items():
        table = torch.as_tensor(list(values), dtype=torch.long)
        q, g = table[query_labels.cpu()], table[gallery_labels.cpu()]
        out[f"factor_{name}_top1"] = float((g[neighbors[:, 0].cpu()] == q).double().mean() * 100.0)
        out[f"factor_{name}_chance"] = retrieval_chance(q, g, (1,))["top1"]
    return out


def format_diagnostics(values: Mapping[str, float], knn_k: Optional[int] = None) -> str:
    """One line per diagnostic present in ``values`` (the keys of the functions above)."""
    lines = []
    for mode in PERTURBATIONS:
        if f"{mode}_top1" in values:
            s = (f"static-bias probe, query frames {'shuffled' if mode == 'shuffle' else 'one frame repeated'}: "
                 f"retrieval top1 {values[f'{mode}_top1']:.1f} (drop {values[f'{mode}_drop_top1']:+.1f})")
            if knn_k is not None and f"{mode}_knn{knn_k}_top1" in values:
                s += f"  kNN{knn_k} top1 {values[f'{mode}_knn{knn_k}_top1']:.1f} (drop {values[f'{mode}_drop_knn{knn_k}_top1']:+.1f})"
            lines.append(s)
    for prefix in sorted({k[: -len("speed_probe_top1")] for k in values if k.endswith("speed_probe_top1")}):
        name = prefix.rstrip("_") or "backbone"
        lines.append(f"speed probe ({name}): playback speed read from held-out clips "
                     f"{values[prefix + 'speed_probe_top1']:.1f} % (chance {values[prefix + 'speed_probe_chance']:.1f})")
    for k in sorted(k for k in values if k.startswith("factor_") and k.endswith("_top1")):
        f = k[len("factor_"): -len("_top1")]
        lines.append(f"per factor: nearest training video has the query's {f}: {values[k]:.1f} "
                     f"(chance {values['factor_' + f + '_chance']:.1f})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# From a config (the retrieval task and the pretraining monitor)
# ------------------------------------------------------------------------------------------------
def dataset_factors(cfg) -> Dict[str, Tuple[Sequence[str], Sequence[int]]]:
    """The class factors of ``TEST.DATASET`` (the generated dataset's preset); {} for others."""
    if cfg.TEST.DATASET != "Synthetic":
        return {}
    from ascnet.data.synthetic import SyntheticSpec, class_factors

    spec = SyntheticSpec.from_cfg(cfg)
    return class_factors(spec.preset, spec.num_classes)


def load_motion_projection(cfg, path: str, in_dim: int) -> Optional[torch.nn.Module]:
    """The online motion projection g_m of an ASCNet checkpoint (``online.proj_m.*``), built from
    ``MODEL.PROJECTION.*``; None (and a log line saying why) when the checkpoint has none or its
    shapes are not those of the config."""
    from ascnet.modeling.heads.build import build_projection
    from ascnet.modeling.weights import _model_state, _strip_ddp, load_checkpoint_file

    state = {_strip_ddp(k): v for k, v in _model_state(load_checkpoint_file(path)).items()}
    sub = {k[len("online.proj_m."):]: v for k, v in state.items() if k.startswith("online.proj_m.")}
    if not sub:
        logger.info("Speed probe: %s has no motion projection (online.proj_m.*); backbone only.", path)
        return None
    head = build_projection(cfg, in_dim)
    try:
        head.load_state_dict(sub)
    except RuntimeError as e:
        logger.warning("Speed probe: the motion projection of %s does not fit MODEL.PROJECTION.* of this config "
                       "(set them as in pretraining); backbone only. %s", path, str(e).splitlines()[0])
        return None
    return head.eval()


def measure_diagnostics(
    cfg, names: Sequence[str], backbone: torch.nn.Module, device, query_dataset, query: torch.Tensor,
    gallery: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor,
    motion_head: Optional[torch.nn.Module] = None,
) -> Dict[str, float]:
    """The diagnostics ``names`` (of :data:`DIAGNOSTICS`) of ``backbone`` with the protocol of ``cfg``.

    Args:
        cfg: ``RETRIEVAL.*`` (centring, kNN, batch), ``DATA.NUM_FRAMES``, ``DATA.SPEEDS``.
        query_dataset: the test-mode dataset of the clean query features.
        query, gallery: (Q, D), (G, D) pooled clean features (before centring / normalisation).
        motion_head: (N, D) -> (N, d), the ASCNet motion projection, also read by the speed probe.

    Returns:
        The keys of :func:`static_bias_probe`, ``speed_probe_top1`` / ``speed_probe_chance``
        (backbone) and ``motion_projection_speed_probe_top1`` / ``..._chance``. Every process must call it (the
        extractions are sharded, each video once).
    """
    from .retrieval import build_retrieval_dataset

    check_diagnostics(names, "RETRIEVAL.DIAGNOSTICS / TRAIN.MONITOR_DIAGNOSTICS")
    r = cfg.RETRIEVAL
    out: Dict[str, float] = {}
    if "static_bias" in names:
        out.update(static_bias_probe(
            backbone, query_dataset, query, gallery, query_labels, gallery_labels, r.CENTER, r.KNN_K,
            r.KNN_TEMPERATURE, r.BATCH_SIZE, cfg.DATA_LOADER.NUM_WORKERS, device, seed=cfg.RNG_SEED))
    if "speed" in names:
        speeds = [int(s) for s in cfg.DATA.SPEEDS]
        c = cfg.clone()
        c.defrost()
        c.DATA.NUM_FRAMES = int(cfg.DATA.NUM_FRAMES) * max(speeds)  # views long enough for the fastest speed
        c.freeze()
        encoders = {"": backbone}
        if motion_head is not None:
            encoders["motion_projection_"] = torch.nn.Sequential(backbone, motion_head)
        feats = {}
        for split in (r.GALLERY_SPLIT, r.QUERY_SPLIT):
            ds = build_retrieval_dataset(c, split, r.SPEED_PROBE_CLIPS, 1)
            feats[split] = extract_speed_features(encoders, ds, speeds, cfg.DATA.NUM_FRAMES, r.BATCH_SIZE,
                                                  cfg.DATA_LOADER.NUM_WORKERS, device)
        for name in encoders:
            res = speed_probe(feats[r.GALLERY_SPLIT][name], feats[r.QUERY_SPLIT][name], cfg.LINEAR.CACHED_L2, seed=cfg.RNG_SEED)
            out.update({name + k: v for k, v in res.items()})
    return out
