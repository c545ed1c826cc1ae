"""HiPER's hierarchical advantage estimation (HAE), registered as the ``hae`` advantage estimator.

It reads the generic :class:`~trainers.core.advantages.TurnBatch` fields plus four per-turn extras under this
module's keys (:data:`SEG_START`, :data:`V_HIGH`, :data:`V_LOW`, :data:`V_SWITCH`) and returns A^L as the
advantages, R^L as the returns, and the high-level and switch quantities as extras (:data:`ADV_HIGH`, ...).
The equations are in docs/methods.md ("HiPER and HAE") and the ``hae`` docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch, as_output, discounted_scan
from trainers.core.registry import ADVANTAGES

__all__ = ["ADV_HIGH", "ADV_SWITCH", "HIGH_MASK", "HAEConfig", "RET_HIGH", "RET_SWITCH", "SEG_START", "V_HIGH",
           "V_LOW", "V_SWITCH", "hae"]

SEG_START = "hiper/seg_start"
"""Input extra: bool, the turn starts a segment (a trajectory's first turn always does)."""
V_HIGH = "hiper/v_high"
"""Input extra: V_H, the high-level value at the turn's start (read at segment starts)."""
V_LOW = "hiper/v_low"
"""Input extra: V_L, the low-level value after the turn's ``</subgoal>``."""
V_SWITCH = "hiper/v_switch"
"""Input extra: V_b, the switch value at the turn's start."""

ADV_HIGH = "hiper/adv_high"
"""Output extra: A^H on segment-start turns, 0 elsewhere."""
RET_HIGH = "hiper/ret_high"
"""Output extra: R^H = A^H + V_H on segment-start turns, 0 elsewhere."""
ADV_SWITCH = "hiper/adv_switch"
"""Output extra: A^b = G^b - V_b."""
RET_SWITCH = "hiper/ret_switch"
"""Output extra: the switch return G^b."""
HIGH_MASK = "hiper/high_mask"
"""Output extra: 1 on the segment-start turns (turn 0 included)."""


@dataclass(frozen=True)
class HAEConfig(AdvantageConfig):
    """The shared estimator settings plus HAE's high-level lambda."""

    lam_high: float = 0.95
    """lambda_H of the semi-Markov high level."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.lam_high <= 1.0:
            raise ValueError(f"HAEConfig.lam_high must be in [0, 1], got {self.lam_high}")


@ADVANTAGES.register("hae")
def hae(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """HiPER's hierarchical advantage estimation (``lam_high`` from an :class:`HAEConfig`, else its default).

    Segment k spans turns s_k..e_k (d_k turns); a trajectory's first turn always starts one.
    boot_k = V_H(s_{k+1}) when a next segment exists; at a truncated end boot^L_k = V_L(e_k) (also used by
    the switch) and boot^H_k = V_H(s_k); at a terminated end 0.
    Low:  delta^L_t = r_t + gamma (1-done_t) V' - V_L(t), V' = V_L(t+1) inside, boot^L_k at e_k;
          A^L_t = delta^L_t + gamma lam (1-done_t) A^L_{t+1}, A^L_{e_k+1} = 0; R^L = A^L + V_L.
    High: Rseg_k = sum_{j<d_k} gamma^j r_{s_k+j};
          delta^H_k = Rseg_k + gamma^{d_k} (1-done_{e_k}) boot^H_k - V_H(s_k);
          A^H_k = delta^H_k + gamma^{d_k} lam_high (1-done_{e_k}) A^H_{k+1}; R^H = A^H + V_H.
    Switch: G^b_t = r_t + gamma G^b_{t+1} inside the segment, G^b_{e_k+1} = boot^L_k; A^b_t = G^b_t - V_b(t).
    Output: ``advantages`` = A^L, ``returns`` = R^L; extras :data:`ADV_HIGH` / :data:`RET_HIGH` (A^H_k,
    R^H_k on segment-start turns, 0 elsewhere), :data:`ADV_SWITCH` (A^b), :data:`RET_SWITCH` (G^b),
    :data:`HIGH_MASK` (1 on the segment-start turns used, turn 0 included). No standardisation here: the
    trainer standardises each of the three (A^H masked by :data:`HIGH_MASK`).
    """
    user = "advantage estimator 'hae'"
    seg_start, v_high = batch.extra(SEG_START, user), batch.extra(V_HIGH, user)
    v_low, v_switch = batch.extra(V_LOW, user), batch.extra(V_SWITCH, user)
    lam_high = cfg.lam_high if isinstance(cfg, HAEConfig) else HAEConfig.lam_high
    n, gamma = batch.num_turns, cfg.gamma
    r, nd = batch.rewards.tolist(), (1 - batch.dones).tolist()
    last = batch.is_last().tolist()
    start = [bool(s) or i == 0 or last[i - 1] for i, s in enumerate(seg_start.tolist())]
    vh, vl, vb = v_high.tolist(), v_low.tolist(), v_switch.tolist()

    seg_end = [last[i] or start[i + 1] for i in range(n)]  # last[n-1] is True, so i + 1 < n here
    boot_low = [0.0] * n  # read at segment ends only
    for i in range(n):
        if seg_end[i]:
            boot_low[i] = vh[i + 1] if not last[i] else (vl[i] if nd[i] else 0.0)
    adv_low = discounted_scan(r, nd, vl, seg_end, boot_low, [gamma] * n, cfg.lam)
    ret_switch = discounted_scan(r, nd, [0.0] * n, seg_end, boot_low, [gamma] * n, 1.0)

    # segment-level quantities, in order; a segment's high-level chain ends with its trajectory
    starts = [i for i in range(n) if start[i]]
    ends = [i for i in range(n) if seg_end[i]]
    rseg, disc, seg_nd, seg_last, v_seg = [], [], [], [], []
    for s, e in zip(starts, ends, strict=True):
        rseg.append(math.fsum(gamma**j * r[s + j] for j in range(e - s + 1)))
        disc.append(gamma ** (e - s + 1))
        seg_nd.append(nd[e])
        seg_last.append(last[e])
        v_seg.append(vh[s])
    # boot^H: next segment's V_H inside a trajectory (read by the scan from v_seg), V_H(s_k) if truncated
    adv_seg = discounted_scan(rseg, seg_nd, v_seg, seg_last, v_seg, disc, lam_high)

    adv_high, ret_high = [0.0] * n, [0.0] * n
    for k, s in enumerate(starts):
        adv_high[s], ret_high[s] = adv_seg[k], adv_seg[k] + v_seg[k]
    like = batch.rewards
    adv_low_t = as_output(adv_low, like)
    ret_switch_t = as_output(ret_switch, like)
    return AdvantageOutput(
        advantages=adv_low_t,
        returns=adv_low_t + as_output(vl, like),
        extras={
            ADV_HIGH: as_output(adv_high, like),
            RET_HIGH: as_output(ret_high, like),
            ADV_SWITCH: ret_switch_t - as_output(vb, like),
            RET_SWITCH: ret_switch_t,
            HIGH_MASK: as_output([float(x) for x in start], like),
        },
    )
