"""Loss terms every method shares, as pure functions on token tensors.

Policy losses have one typed signature (:class:`PolicyLoss`) and are registered by name in
:data:`trainers.core.registry.POLICY_LOSSES` (``ppo_clip``); the KL, entropy and value terms are plain
functions the trainer calls. Tensors are ``[B, T]`` (one row per trained turn, padded) with a ``mask`` that is
1 on policy tokens and 0 on everything else (or float per-token weights); every mean is the token-mean over
the whole batch (:func:`masked_mean`). The formulas are written out in docs/methods.md ("Policy loss",
"Value loss"). Functions returning statistics return them as detached 0-d tensors, so logging them costs no
device sync until the trainer asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from trainers.core.registry import POLICY_LOSSES

__all__ = [
    "PolicyLoss",
    "aggregate_weights",
    "entropy_bonus",
    "kl_low_var",
    "masked_mean",
    "ppo_clip",
    "value_clip_loss",
]

_MAX_LOG_RATIO = 20.0


def aggregate_weights(weights: Tensor, traj_ids: Sequence[int], mode: str = "token") -> Tensor:
    """Per-token loss weights [N, T] (one row per turn) for a loss aggregation ``mode``.

    ``token``: unchanged, so the loss is the token-mean over the batch and a trajectory weighs as many tokens
    as it has (long failing episodes dominate, and with group-centred advantages the net push is down).
    ``trajectory``: each row is divided by the summed weight of its trajectory (rows with equal ``traj_ids``),
    so every trajectory with trained tokens weighs 1 in total (verl's ``seq-mean-token-mean`` at episode level).
    """
    if mode == "token":
        return weights
    if mode != "trajectory":
        raise ValueError(f"loss aggregation must be 'token' or 'trajectory', got {mode!r}")
    if len(traj_ids) != weights.shape[0]:
        raise ValueError(f"{len(traj_ids)} trajectory ids for {weights.shape[0]} rows")
    if not len(traj_ids):
        return weights
    _, inv = torch.unique(torch.as_tensor(list(traj_ids)), return_inverse=True)
    inv = inv.to(weights.device)
    totals = torch.zeros(int(inv.max()) + 1, dtype=weights.dtype, device=weights.device)
    totals.index_add_(0, inv, weights.sum(1))
    return weights / totals[inv].clamp_min(torch.finfo(weights.dtype).tiny)[:, None]


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Token-mean: sum(x * mask) / sum(mask) (over ``dim``, or everything), 0 where the mask is empty.

    ``mask`` is bool (or 0/1), or float per-token **weights** (>= 0): then the result is the weighted
    mean sum(w x) / sum(w), which is how a trainer trains some tokens more than others (0 = untrained).
    Masked-out entries are never read, so padding may hold inf or nan.
    """
    if not mask.is_floating_point():
        m = mask.to(torch.bool)
        x = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
        count = m.sum() if dim is None else m.sum(dim)
        total = x.sum() if dim is None else x.sum(dim)
        return total / count.clamp_min(1).to(x.dtype)
    w = mask.to(x.dtype)
    x = torch.where(w != 0, x * w, torch.zeros((), dtype=x.dtype, device=x.device))
    weight = w.sum() if dim is None else w.sum(dim)
    total = x.sum() if dim is None else x.sum(dim)
    return torch.where(weight > 0, total / torch.where(weight > 0, weight, torch.ones_like(weight)), torch.zeros_like(total))


def as_tokens(x: Tensor, like: Tensor) -> Tensor:
    """A per-row tensor [B] broadcast against tokens [B, T]; token tensors pass through."""
    return x.unsqueeze(-1) if x.dim() == like.dim() - 1 else x


class PolicyLoss(Protocol):
    """The signature of a registered policy loss: log-probs of the current policy ``logp`` [B, T], the sampling
    policy's ``old_logp`` [B, T], advantages ``adv`` ([B, T] or per row [B]) and per-token weights ``mask``
    [B, T]; the clip settings of the config. Returns the loss (a 0-d tensor to minimise) and detached 0-d
    statistics logged as ``losses/<name>``."""

    def __call__(
        self,
        logp: Tensor,
        old_logp: Tensor,
        adv: Tensor,
        mask: Tensor,
        *,
        eps_lo: float,
        eps_hi: float,
        dual_clip: float | None,
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    eps_lo: float = 0.2,
    eps_hi: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate, token-mean.

    ratio = exp(logp - old_logp) (log-ratio clamped to +-20 for safety);
    l = max(-A ratio, -A clip(ratio, 1 - eps_lo, 1 + eps_hi)); with ``dual_clip`` c (> 1) and A < 0,
    l = min(l, -c A). loss = masked_mean(l). ``adv`` is [B, T] or per row [B]; it and ``old_logp`` are
    treated as constants.
    Stats: ``clipfrac`` (tokens where the clipped term is the larger), ``approx_kl`` (k3 estimate of
    KL(old || new): mean(ratio - 1 - log ratio)), ``dual_clipfrac`` (tokens cut by the dual clip).
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    adv = as_tokens(adv, logp).detach()
    log_ratio = (logp - old_logp.detach()).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    pg1 = -adv * ratio
    pg2 = -adv * ratio.clamp(1.0 - eps_lo, 1.0 + eps_hi)
    pg = torch.maximum(pg1, pg2)
    dual = torch.zeros_like(pg, dtype=torch.bool)
    if dual_clip is not None:
        pg3 = -adv * dual_clip
        dual = (adv < 0) & (pg > pg3)
        pg = torch.where(dual, pg3, pg)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg2 > pg1).to(pg.dtype), mask),
            "approx_kl": masked_mean(ratio - 1.0 - log_ratio, mask),
            "dual_clipfrac": masked_mean(dual.to(pg.dtype), mask),
        }
    return masked_mean(pg, mask), stats


def kl_low_var(logp: Tensor, ref_logp: Tensor, mask: Tensor, max_kl: float | None = None) -> Tensor:
    """Low-variance KL(pi || ref) estimate (k3), token-mean: k = exp(ref - logp) - (ref - logp) - 1 >= 0.

    ``ref_logp`` is a constant; ``max_kl`` optionally clamps k per token (verl uses 10).
    """
    diff = ref_logp.detach() - logp
    k = torch.exp(diff) - diff - 1.0
    if max_kl is not None:
        k = k.clamp(max=max_kl)
    return masked_mean(k, mask)


def entropy_bonus(entropy: Tensor, mask: Tensor) -> Tensor:
    """Token-mean entropy H = masked_mean(entropy), a quantity to *maximise*: the trainer adds -c_H * H."""
    return masked_mean(entropy, mask)


def value_clip_loss(
    v: Tensor, v_old: Tensor, ret: Tensor, mask: Tensor, clip: float = 0.2
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss: v_c = v_old + clip(v - v_old, -clip, clip);
    loss = 0.5 * masked_mean(max((v - ret)^2, (v_c - ret)^2)). ``v_old`` and ``ret`` are constants.

    Any shape (per token [B, T] or per turn [N]). Stats: ``clipfrac`` (entries where the clipped term won).
    """
    v_old, ret = v_old.detach(), ret.detach()
    v_clipped = v_old + (v - v_old).clamp(-clip, clip)
    l1 = (v - ret) ** 2
    l2 = (v_clipped - ret) ** 2
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((l2 > l1).to(l1.dtype), mask)}
    return 0.5 * masked_mean(torch.maximum(l1, l2), mask), stats
