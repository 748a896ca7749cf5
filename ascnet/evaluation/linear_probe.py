"""The cached linear probe: multinomial logistic regression on frozen features, fitted by L-BFGS.

Used by ``LINEAR.MODE cached`` (``ascnet/engine/downstream.py``). Pure torch on the features'
device: no data loading here.

- Standardisation: ``(x - mean) / sqrt(var + eps)`` with the mean and (biased) variance of the
  training features, exactly what ``BatchNorm1d(D, affine=False)`` computes in eval mode, so the
  fitted probe is a :class:`ascnet.modeling.meta_arch.classifier.Classifier` with
  ``LINEAR.FEATURE_NORM bn`` (its checkpoint can be tested with ``TASK test``).
- Objective: mean cross-entropy over the training views + ``l2 / 2 * ||W||^2`` (no penalty on the
  bias), minimised by ``torch.optim.LBFGS`` with a strong-Wolfe line search to convergence.
- L2 sweep: each value of ``LINEAR.CACHED_L2`` is fitted on the training videos minus a held-out
  part (``LINEAR.CACHED_VAL_FRACTION`` of the videos of each class, drawn with the seed) and
  scored by the held-out top-1 (softmax averaged over a video's views); ties go to the larger
  L2. The chosen value is refitted on every training video.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

BN_EPS = 1e-5  # BatchNorm1d's default eps


def standardisation(x: torch.Tensor, eps: float = BN_EPS) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of (M, D) features (BatchNorm's running statistics after one
    pass with momentum 1)."""
    x = x.double()
    return x.mean(dim=0).float(), x.var(dim=0, unbiased=False).float()


def standardise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float = BN_EPS) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` (BatchNorm1d in eval mode, no affine)."""
    return (x - mean) / torch.sqrt(var + eps)


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int = 500
) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, float]]:
    """Multinomial logistic regression by L-BFGS.

    Args:
        x: (M, D) standardised features (float32, any device).
        y: (M,) int64 labels in [0, num_classes).
        num_classes: C.
        l2: penalty ``l2 / 2 * ||W||^2`` added to the mean cross-entropy.
        max_iter: L-BFGS iterations at most.

    Returns:
        (weight (C, D), bias (C,), info ``{"loss", "iterations"}``).
    """
    d = x.shape[1]
    w = torch.zeros(num_classes, d, device=x.device, dtype=torch.float32, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=int(max_iter), history_size=20, tolerance_grad=1e-6, tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )
    y = y.long().to(x.device)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(F.linear(x, w, b), y) + 0.5 * float(l2) * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(F.cross_entropy(F.linear(x, w, b), y))
    state = opt.state[opt._params[0]]
    return w.detach(), b.detach(), {"loss": loss, "iterations": int(state.get("n_iter", 0))}


def video_probs(feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(N, V, D) standardised view features -> (N, C) softmax averaged over the V views."""
    n, v, d = feats.shape
    return F.linear(feats.reshape(n * v, d), weight, bias).softmax(dim=1).view(n, v, -1).mean(dim=1)


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stratified split of video indices: (fit, held_out), ``fraction`` of each class held out
    (rounded; none for a class of one video)."""
    g = torch.Generator().manual_seed(int(seed))
    fit: List[int] = []
    held: List[int] = []
    labels = labels.cpu()
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = int(round(fraction * idx.numel())) if idx.numel() > 1 else 0
        k = min(max(k, 1 if fraction > 0 and idx.numel() > 1 else 0), idx.numel() - 1)
        held += idx[:k].tolist()
        fit += idx[k:].tolist()
    return torch.tensor(sorted(fit), dtype=torch.long), torch.tensor(sorted(held), dtype=torch.long)


def fit_probe(
    train_feats: torch.Tensor, train_labels: torch.Tensor, num_classes: int, l2_values: Sequence[float],
    val_fraction: float = 0.2, seed: int = 0, max_iter: int = 500,
) -> Dict[str, object]:
    """Standardise, choose the L2 on held-out training videos, refit on all of them.

    Args:
        train_feats: (N, V, D) raw frozen features of V views of each training video.
        train_labels: (N,) int64.
        num_classes: C.
        l2_values: the sweep.
        val_fraction: share of each class's videos held out for the choice.
        seed: draws the held-out videos.
        max_iter: L-BFGS iterations per fit.

    Returns:
        ``{"weight" (C, D), "bias" (C,), "mean" (D,), "var" (D,), "l2", "sweep": {l2: held-out
        top-1 %}, "train_loss", "iterations"}``.
    """
    n, v, d = train_feats.shape
    mean, var = standardisation(train_feats.reshape(n * v, d))
    z = standardise(train_feats, mean, var)
    y = train_labels.long().to(z.device)
    fit_idx, val_idx = holdout_split(train_labels, val_fraction, seed)
    sweep: Dict[float, float] = {}
    values = sorted(float(x) for x in l2_values)
    if len(values) > 1 and val_idx.numel():
        fi, vi = fit_idx.to(z.device), val_idx.to(z.device)
        for l2 in values:
            w, b, _ = fit_logistic_regression(z[fi].reshape(-1, d), y[fi].repeat_interleave(v), num_classes, l2, max_iter)
            with torch.no_grad():
                acc = (video_probs(z[vi], w, b).argmax(dim=1) == y[vi]).double().mean() * 100.0
            sweep[l2] = float(acc)
        best = max(values, key=lambda l2: (sweep[l2], l2))  # ties: the larger penalty
    else:
        best = values[0]
    w, b, info = fit_logistic_regression(z.reshape(-1, d), y.repeat_interleave(v), num_classes, best, max_iter)
    return {"weight": w, "bias": b, "mean": mean, "var": var, "l2": best, "sweep": sweep,
            "train_loss": info["loss"], "iterations": info["iterations"]}
