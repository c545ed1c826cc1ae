"""Loss terms as pure functions on token tensors, registered by name in
:data:`trainers.core.registry.LOSSES`.

Tensors are ``[B, T]`` (one row per trained turn, padded) with a ``mask`` that is 1 on policy tokens and 0
on everything else; every mean is the token-mean over the whole batch (:func:`masked_mean`). Formulas
follow /work/shared/METHODS.md. Functions returning statistics return them as detached 0-d tensors, so
logging them costs no device sync until the trainer asks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.core.registry import LOSSES

__all__ = [
    "EntropyHistory",
    "aggregate_weights",
    "entropy_bonus",
    "epo_band_penalty",
    "epo_phase_weight",
    "kl_low_var",
    "masked_mean",
    "overlong_penalty",
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


def _as_tokens(x: Tensor, like: Tensor) -> Tensor:
    """A per-row tensor [B] broadcast against tokens [B, T]; token tensors pass through."""
    return x.unsqueeze(-1) if x.dim() == like.dim() - 1 else x


@LOSSES.register("ppo_clip")
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
    adv = _as_tokens(adv, logp).detach()
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


@LOSSES.register("kl_low_var")
def kl_low_var(logp: Tensor, ref_logp: Tensor, mask: Tensor, max_kl: float | None = None) -> Tensor:
    """Low-variance KL(pi || ref) estimate (k3), token-mean: k = exp(ref - logp) - (ref - logp) - 1 >= 0.

    ``ref_logp`` is a constant; ``max_kl`` optionally clamps k per token (verl uses 10).
    """
    diff = ref_logp.detach() - logp
    k = torch.exp(diff) - diff - 1.0
    if max_kl is not None:
        k = k.clamp(max=max_kl)
    return masked_mean(k, mask)


@LOSSES.register("entropy_bonus")
def entropy_bonus(entropy: Tensor, mask: Tensor) -> Tensor:
    """Token-mean entropy H = masked_mean(entropy), a quantity to *maximise*: the trainer adds -c_H * H."""
    return masked_mean(entropy, mask)


@LOSSES.register("value_clip_loss")
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


@LOSSES.register("overlong_penalty")
def overlong_penalty(length: Tensor, max_len: int, buffer: int) -> Tensor:
    """DAPO soft overlong reward (a reward term, added to the sequence's reward, <= 0).

    p(L) = min(-(L - (Lmax - B)) / B, 0): 0 up to Lmax - B, then falling linearly to -1 at L = Lmax;
    clamped at -1 beyond Lmax (DAPO). Returns a float tensor shaped like ``length``.
    """
    if not 0 < buffer <= max_len:
        raise ValueError(f"need 0 < buffer <= max_len, got buffer={buffer}, max_len={max_len}")
    length = length.to(torch.get_default_dtype()) if not length.is_floating_point() else length
    return (-(length - (max_len - buffer)) / buffer).clamp(min=-1.0, max=0.0)


@LOSSES.register("epo_band_penalty")
def epo_band_penalty(
    entropy: Tensor,
    ref_entropy_per_token: Tensor,
    mask: Tensor,
    kappa_lo: float = 0.0,
    kappa_hi: float = 2.0,
    alpha: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """EPO entropy-smoothing penalty, differentiable in H (METHODS **Decision**).

    P = alpha * masked_mean(relu(kappa_lo Hbar - H) + relu(H - kappa_hi Hbar)), Hbar the historical
    reference of each token's turn index (``ref_entropy_per_token``, [B, T] or per row [B], a constant).
    Minimising P raises H below the band, lowers it above, and leaves it alone inside.
    Returns (P, fraction of policy tokens outside [kappa_lo Hbar, kappa_hi Hbar], detached).
    """
    if not 0.0 <= kappa_lo <= kappa_hi:
        raise ValueError(f"need 0 <= kappa_lo <= kappa_hi, got {kappa_lo}, {kappa_hi}")
    ref = _as_tokens(ref_entropy_per_token, entropy).detach()
    lo, hi = kappa_lo * ref, kappa_hi * ref
    penalty = alpha * masked_mean(torch.relu(lo - entropy) + torch.relu(entropy - hi), mask)
    with torch.no_grad():
        outside = masked_mean(((entropy < lo) | (entropy > hi)).to(entropy.dtype), mask)
    return penalty, outside


def epo_phase_weight(e: float, total: float) -> float:
    """EPO phase weight w(e) for iteration e of E = ``total``.

    First half (e < E/2): p = e / (E/2), w = 1 - 0.2 (1 - exp(-2p)) (1 -> ~0.827);
    second half: p = (e - E/2) / (E/2), w = 0.8 exp(-3p) (0.8 -> ~0.040).
    """
    if total <= 0:
        raise ValueError(f"total iterations must be > 0, got {total}")
    half = total / 2.0
    if e < half:
        return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * e / half))
    return 0.8 * math.exp(-3.0 * (e - half) / half)


class EntropyHistory:
    """EPO's historical entropy reference: Hbar_tau = mean over past iterations of the batch-mean token
    entropy at turn index tau (over the last ``window`` iterations that saw tau; all of them when None).

    Per iteration: ``ref = hist.reference_tensor(turn_idx, fallback)`` *before* ``hist.update(...)`` with
    this batch's :meth:`turn_means`, so the reference only holds past iterations.
    """

    def __init__(self, window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        self.window = window
        self._sum: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self._recent: dict[int, deque[float]] = {}

    @staticmethod
    def turn_means(entropy: Tensor, mask: Tensor, turn_idx: Tensor) -> dict[int, float]:
        """{tau: token-mean entropy over all policy tokens of rows with turn index tau} for a batch
        (``entropy``/``mask`` [B, T], ``turn_idx`` [B]); turn indices without tokens are left out."""
        with torch.no_grad():
            m = mask.to(torch.bool)
            row_sum = torch.where(m, entropy, torch.zeros((), dtype=entropy.dtype, device=entropy.device))
            row_sum, row_cnt = row_sum.double().sum(-1), m.sum(-1).double()
            uniq, inv = torch.unique(turn_idx, return_inverse=True)
            tot = torch.zeros(uniq.numel(), dtype=torch.float64, device=row_sum.device)
            tot = tot.index_add_(0, inv, row_sum)
            cnt = torch.zeros_like(tot).index_add_(0, inv, row_cnt)
        pairs = zip(uniq.tolist(), tot.tolist(), cnt.tolist(), strict=True)
        return {int(t): s / c for t, s, c in pairs if c > 0}

    def update(self, means: Mapping[int, float]) -> None:
        """Record one iteration's {turn index: batch-mean entropy}."""
        for tau, h in means.items():
            tau, h = int(tau), float(h)
            if self.window is None:
                self._sum[tau] = self._sum.get(tau, 0.0) + h
                self._count[tau] = self._count.get(tau, 0) + 1
            else:
                self._recent.setdefault(tau, deque(maxlen=self.window)).append(h)

    def reference(self, turn_idx: int) -> float | None:
        """Hbar at ``turn_idx``, None if that turn index was never seen."""
        if self.window is None:
            n = self._count.get(turn_idx, 0)
            return self._sum[turn_idx] / n if n else None
        recent = self._recent.get(turn_idx)
        return sum(recent) / len(recent) if recent else None

    def reference_tensor(self, turn_idx: Tensor, fallback: float | Tensor) -> Tensor:
        """Hbar per row for ``turn_idx`` [B] (float32); unseen turn indices take ``fallback`` (a float,
        or a [B] tensor, e.g. the current batch's detached entropy)."""
        refs = [self.reference(int(t)) for t in turn_idx.tolist()]
        fb = torch.as_tensor(fallback, dtype=torch.float32).expand(len(refs)).tolist()
        vals = [fb[i] if r is None else r for i, r in enumerate(refs)]
        return torch.tensor(vals, dtype=torch.float32, device=turn_idx.device)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python (JSON-safe) state for checkpoints."""
        return {
            "window": self.window,
            "sum": {str(k): v for k, v in self._sum.items()},
            "count": {str(k): v for k, v in self._count.items()},
            "recent": {str(k): list(v) for k, v in self._recent.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["window"] != self.window:
            raise ValueError(f"checkpoint window {state['window']} != this history's window {self.window}")
        self._sum = {int(k): float(v) for k, v in state["sum"].items()}
        self._count = {int(k): int(v) for k, v in state["count"].items()}
        self._recent = {int(k): deque(map(float, v), maxlen=self.window) for k, v in state["recent"].items()}
