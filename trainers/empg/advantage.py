"""EMPG's entropy-modulated advantage, registered as the ``empg`` advantage estimator.

On top of a base estimator's per-turn advantage A (GRPO's by default), with H_t the mean token entropy of turn
t's response (per-turn extra :data:`ENTROPY`):

    Ĥ_t = (H_t - min H) / (max H - min H + eps)          min-max over the batch's turns
    g_t = exp(-k Ĥ_t) / mean_batch exp(-k Ĥ)              confident turns amplified, uncertain ones damped
    f_t = exp(-k' Ĥ_{t+1}), 0 after a trajectory's last turn   the "future clarity" of the next state
    A'_t = g_t A_t + zeta f_t;   A_mod = A' - mean_batch A'

(docs/methods.md, "EMPG"; the formula is taken from a summary of the paper, not checked against its full text).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch
from trainers.core.registry import ADVANTAGES

__all__ = ["ENTROPY", "EMPGAdvantageConfig", "empg"]

ENTROPY = "empg/entropy"
"""Input extra: float [N], each turn's mean token entropy (``Turn.entropy``)."""


@dataclass(frozen=True)
class EMPGAdvantageConfig(AdvantageConfig):
    """The shared estimator settings plus EMPG's."""

    base: str = "grpo"
    """The estimator whose advantage is modulated (any registered one but ``empg``)."""
    k: float = 1.0
    """Sharpness of the self-confidence weight g."""
    k_next: float = 1.0
    """Sharpness of the future-clarity bonus f."""
    zeta: float = 0.1
    """Weight of the future-clarity bonus."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base == "empg":
            raise ValueError("EMPGAdvantageConfig.base must be another estimator than 'empg'")
        for name in ("k", "k_next", "zeta"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"EMPGAdvantageConfig.{name} must be a finite number >= 0, got {getattr(self, name)}")


@ADVANTAGES.register("empg")
def empg(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """The base estimator's advantage modulated by entropy (see the module docstring; settings from an
    :class:`EMPGAdvantageConfig`, else its defaults). Extras: ``empg/base`` (A), ``empg/g``, ``empg/clarity`` (zeta f).
    Stats: the batch's ``entropy_mean``/``entropy_min``/``entropy_max`` and ``g_min``/``g_max``."""
    c = cfg if isinstance(cfg, EMPGAdvantageConfig) else EMPGAdvantageConfig(**{f.name: getattr(cfg, f.name)
                                                                                 for f in fields(AdvantageConfig)})
    h = batch.extra(ENTROPY, "advantage estimator 'empg'").double()
    base = ADVANTAGES.get(c.base)(batch, c)
    a = base.advantages.double()
    if batch.num_turns == 0:
        return AdvantageOutput(base.advantages, base.returns)
    lo, hi = float(h.min()), float(h.max())
    norm = (h - lo) / (hi - lo + c.eps)
    weight = torch.exp(-c.k * norm)
    g = weight / weight.mean()
    nxt = torch.zeros_like(norm)
    last = batch.is_last()
    nxt[:-1] = norm[1:]
    clarity = torch.where(last, torch.zeros_like(norm), c.zeta * torch.exp(-c.k_next * nxt))
    mod = g * a + clarity
    mod = mod - mod.mean()
    like = batch.rewards
    return AdvantageOutput(
        advantages=mod.to(like.dtype),
        returns=base.returns,
        extras={"empg/base": base.advantages, "empg/g": g.to(like.dtype), "empg/clarity": clarity.to(like.dtype)},
        stats={"entropy_mean": float(h.mean()), "entropy_min": lo, "entropy_max": hi, "g_min": float(g.min()),
               "g_max": float(g.max())},
    )
