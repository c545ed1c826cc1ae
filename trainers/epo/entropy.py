"""EPO's own numerics: the entropy-smoothing band penalty, the phase weight, and the historical entropy reference.

The formulas are written out in docs/methods.md ("EPO"); the trainer that uses them is
:mod:`trainers.epo.trainer`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from trainers.core.losses import as_tokens, masked_mean

__all__ = ["EntropyHistory", "epo_band_penalty", "epo_phase_weight"]


def epo_band_penalty(
    entropy: Tensor,
    ref_entropy_per_token: Tensor,
    mask: Tensor,
    kappa_lo: float = 0.0,
    kappa_hi: float = 2.0,
    alpha: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """EPO entropy-smoothing penalty, differentiable in H (a decision of ours: EPO's released indicator has no
    gradient; docs/methods.md, "EPO").

    P = alpha * masked_mean(relu(kappa_lo Hbar - H) + relu(H - kappa_hi Hbar)), Hbar the historical
    reference of each token's turn index (``ref_entropy_per_token``, [B, T] or per row [B], a constant).
    Minimising P raises H below the band, lowers it above, and leaves it alone inside.
    Returns (P, fraction of policy tokens outside [kappa_lo Hbar, kappa_hi Hbar], detached).
    """
    if not 0.0 <= kappa_lo <= kappa_hi:
        raise ValueError(f"need 0 <= kappa_lo <= kappa_hi, got {kappa_lo}, {kappa_hi}")
    ref = as_tokens(ref_entropy_per_token, entropy).detach()
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
