"""HiPER's hierarchical advantage estimation (``trainers.hiper.hae``): hand-computed cases, reductions to flat
estimators, a missing input named, and the statistical unbiased / lower-variance check."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch
from trainers.core.registry import ADVANTAGES
from trainers.hiper.hae import (
    ADV_HIGH,
    ADV_SWITCH,
    HIGH_MASK,
    RET_HIGH,
    RET_SWITCH,
    SEG_START,
    V_HIGH,
    V_LOW,
    V_SWITCH,
    HAEConfig,
)


def run(name: str, batch: TurnBatch, **cfg: float) -> AdvantageOutput:
    config = HAEConfig(**cfg) if name == "hae" else AdvantageConfig(**cfg)
    return ADVANTAGES.get(name)(batch, config)


def close(actual: torch.Tensor, expected: list[float], tol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


def test_hae_is_registered_and_names_a_missing_input() -> None:
    assert "hae" in ADVANTAGES
    batch = TurnBatch.from_nested([[1.0, 0.0]], extras={SEG_START: [[True, False]]})
    with pytest.raises(KeyError, match=r"'hae' needs TurnBatch extras\['hiper/v_high'\]"):
        run("hae", batch)
    with pytest.raises(ValueError, match="lam_high"):
        HAEConfig(lam_high=1.5)


# ----------------------------------------------------------------------------------------------- HAE

HAE_CFG = {"gamma": 0.9, "lam": 0.8, "lam_high": 0.5}
V_L, V_H, V_B = [0.5, 1.0, 1.5, 2.0, 2.5], [0.6, 9.0, 1.2, 9.0, 1.8], [0.1, 0.2, 0.3, 0.4, 0.5]


def _hae_batch(
    rewards: list[float], starts: list[int], terminated: bool = True, **v: list[float]
) -> TurnBatch:
    n = len(rewards)
    return TurnBatch.from_nested(
        [rewards],
        terminated=[terminated],
        extras={SEG_START: [[bool(x) for x in starts]], V_LOW: [v.get("v_low", V_L[:n])], V_HIGH: [v.get("v_high", V_H[:n])],
                V_SWITCH: [v.get("v_switch", V_B[:n])]},
    )


def test_hae_one_segment_by_hand() -> None:
    # low level = the GAE example above: A^L = (1.9112, 0.71, 0.5), R^L = A^L + V_L
    # high: Rseg = 1 + 0.9*0 + 0.81*2 = 2.62, done -> A^H = 2.62 - V_H(0) = 2.62 - 0.6 = 2.02
    # switch: G^b = (1 + 0.9*1.8, 0 + 0.9*2, 2) = (2.62, 1.8, 2); A^b = G^b - V_b = (2.52, 1.6, 1.7)
    out = run("hae", _hae_batch([1, 0, 2], [1, 0, 0]), **HAE_CFG)
    close(out.advantages, [1.9112, 0.71, 0.5])
    assert out.returns is not None
    close(out.returns, [2.4112, 1.71, 2.0])
    close(out.extras[ADV_HIGH], [2.02, 0, 0])
    close(out.extras[RET_HIGH], [2.62, 0, 0])
    close(out.extras[RET_SWITCH], [2.62, 1.8, 2.0])
    close(out.extras[ADV_SWITCH], [2.52, 1.6, 1.7])


def test_hae_several_segments_terminated_by_hand() -> None:
    # r = (1, 0, 2, 0, 3), segments {0,1}, {2,3}, {4}; V_H = 9 where never read;
    # boot = (V_H(2), V_H(4), 0) = (1.2, 1.8, 0)
    # low: t1: 0 + .9*1.2 - 1 = .08; t0: 1 + .9*1 - .5 + .72*.08 = 1.4576
    #      t3: 0 + .9*1.8 - 2 = -.38; t2: 2 + .9*2 - 1.5 + .72*(-.38) = 2.0264;  t4: 3 - 2.5 = .5
    # high: Rseg = (1, 2, 3), disc = (.81, .81, .9); A2 = 3 - 1.8 = 1.2
    #      A1 = 2 + .81*1.8 - 1.2 + .81*.5*1.2 = 2.744;  A0 = 1 + .81*1.2 - .6 + .405*2.744 = 2.48332
    # switch: G = (1 + .9*1.08, .9*1.2, 2 + .9*1.62, .9*1.8, 3) = (1.972, 1.08, 3.458, 1.62, 3)
    out = run("hae", _hae_batch([1, 0, 2, 0, 3], [1, 0, 1, 0, 1]), **HAE_CFG)
    close(out.advantages, [1.4576, 0.08, 2.0264, -0.38, 0.5])
    assert out.returns is not None
    close(out.returns, [1.9576, 1.08, 3.5264, 1.62, 3.0])
    close(out.extras[ADV_HIGH], [2.48332, 0, 2.744, 0, 1.2])
    close(out.extras[RET_HIGH], [3.08332, 0, 3.944, 0, 3.0])
    close(out.extras[RET_SWITCH], [1.972, 1.08, 3.458, 1.62, 3.0])
    close(out.extras[ADV_SWITCH], [1.872, 0.88, 3.158, 1.22, 2.5])


def test_hae_truncated_by_hand() -> None:
    # as above but truncated after t4: boot^L = V_L(4) = 2.5, boot^H = V_H(s_2) = 1.8
    # low t4: 3 + .9*2.5 - 2.5 = 2.75; high: A2 = 3 + .9*1.8 - 1.8 = 2.82, A1 = 2.258 + .405*2.82 = 3.4001,
    # A0 = 1.372 + .405*3.4001 = 2.7490405; switch t4: G = 3 + .9*2.5 = 5.25
    out = run("hae", _hae_batch([1, 0, 2, 0, 3], [1, 0, 1, 0, 1], terminated=False), **HAE_CFG)
    close(out.advantages, [1.4576, 0.08, 2.0264, -0.38, 2.75])
    close(out.extras[ADV_HIGH], [2.7490405, 0, 3.4001, 0, 2.82])
    close(out.extras[RET_HIGH], [3.3490405, 0, 4.6001, 0, 4.62])
    close(out.extras[RET_SWITCH], [1.972, 1.08, 3.458, 1.62, 5.25])


def test_hae_first_turn_always_starts_and_batches_do_not_leak() -> None:
    one = run("hae", _hae_batch([1, 0, 2], [0, 0, 0]), **HAE_CFG)
    close(one.extras[ADV_HIGH], [2.02, 0, 0])
    both = TurnBatch.from_nested(
        [[1, 0, 2, 0, 3], [1, 0, 2]],
        extras={SEG_START: [[True, False, True, False, True], [False, False, False]], V_LOW: [V_L, V_L[:3]],
                V_HIGH: [V_H, V_H[:3]], V_SWITCH: [V_B, V_B[:3]]},
    )
    out = run("hae", both, **HAE_CFG)
    close(out.advantages[5:], one.advantages.tolist())
    close(out.extras[ADV_HIGH], [2.48332, 0, 2.744, 0, 1.2, 2.02, 0, 0])
    close(out.extras[HIGH_MASK], [1, 0, 1, 0, 1, 1, 0, 0])


@pytest.mark.parametrize("terminated", [True, False])
def test_hae_every_turn_a_segment_reduces_to_flat_td(terminated: bool) -> None:
    # d_k = 1 and boot = V_H(t+1): A^H is flat GAE(lam_high) on V_H (a truncated end bootstraps V_H(last));
    # with V_L = V_b = V_H = V, A^L and A^b are both flat GAE with lam = 0 (one-step TD residuals on V).
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(6, generator=g).tolist(), torch.randn(6, generator=g).tolist()
    out = run("hae", _hae_batch(r, [1] * 6, terminated, v_low=v, v_high=v, v_switch=v), **HAE_CFG)
    flat = TurnBatch.from_nested([r], terminated=[terminated], last_values=[v[-1]], values=[v])
    torch.testing.assert_close(out.extras[ADV_HIGH], run("gae", flat, gamma=0.9, lam=0.5).advantages)
    td = run("gae", flat, gamma=0.9, lam=0.0).advantages
    torch.testing.assert_close(out.advantages, td)
    torch.testing.assert_close(out.extras[ADV_SWITCH], td)


@pytest.mark.parametrize("terminated", [True, False])
def test_hae_single_segment_reduces_to_flat_gae_and_reinforce(terminated: bool) -> None:
    # One segment: A^L = flat GAE(V_L, lam_L) bootstrapped from V_L(last) when truncated; A^b = flat GAE(V_b,
    # lam = 1) with the same bootstrap; A^H_0 = sum_t gamma^t r_t + gamma^T boot^H - V_H(0) = flat GAE(V_H, 1)
    # at turn 0 with boot V_H(0); with V = 0, gamma = 1 and termination, A^H_0 = R (REINFORCE / GRPO's R).
    g = torch.Generator().manual_seed(1)
    r, vl, vh, vb = (torch.randn(5, generator=g).tolist() for _ in range(4))
    out = run("hae", _hae_batch(r, [1, 0, 0, 0, 0], terminated, v_low=vl, v_high=vh, v_switch=vb), **HAE_CFG)

    def flat(values: list[float], boot: float, lam: float) -> torch.Tensor:
        b = TurnBatch.from_nested([r], terminated=[terminated], last_values=[boot], values=[values])
        return run("gae", b, gamma=0.9, lam=lam).advantages

    torch.testing.assert_close(out.advantages, flat(vl, vl[-1], 0.8))
    torch.testing.assert_close(out.extras[ADV_SWITCH], flat(vb, vl[-1], 1.0))
    close(out.extras[ADV_HIGH], [float(flat(vh, vh[0], 1.0)[0]), 0, 0, 0, 0])
    if terminated:
        zero = [0.0] * 5
        plain = run("hae", _hae_batch(r, [1, 0, 0, 0, 0], v_low=zero, v_high=zero, v_switch=zero), gamma=1.0)
        close(plain.extras[ADV_HIGH], [math.fsum(r), 0, 0, 0, 0])




# ------------------------------------------------------------------ HAE: unbiased, lower variance (stat)


def test_hae_high_level_is_unbiased_and_lower_variance_than_flat_gae() -> None:
    """Synthetic hierarchical MDP with known values: K segments of d turns, gamma = 1 (HiPER's setting).

    At each segment start the policy picks subgoal g ~ Bernoulli(1/2); the segment's last turn pays
    Bernoulli(p_g) and every turn adds N(0, sigma^2) noise. With m = mean_g p_g: V_H(k) = (K - k) m,
    V_L(k, j; g) = p_g + (K - k - 1) m, and the true advantage of choosing g is p_g - m.
    Both HAE's A^H (lam_H = .95, exact V_H) and flat GAE at the segment-start turn (gamma = lam = 1, the PPO
    baseline's setting, exact per-turn values) are unbiased for p_g - m; A^H discounts the noise of later
    segments by lam_H^k, so its variance is lower (~0.78x here). (Flat GAE with lam < 1 and exact per-turn
    values would also cut variance; HAE needs values only at segment starts for the high level.)
    """
    n, k_seg, d, sigma, p = 8000, 6, 3, 0.5, torch.tensor([0.3, 0.8], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1234)
    g = torch.randint(0, 2, (n, k_seg), generator=gen)
    success = (torch.rand(n, k_seg, generator=gen, dtype=torch.float64) < p[g]).double()
    rewards = sigma * torch.randn(n, k_seg, d, generator=gen, dtype=torch.float64)
    rewards[:, :, -1] += success
    m = float(p.mean())
    v_high = ((k_seg - torch.arange(k_seg, dtype=torch.float64)) * m).expand(n, k_seg)
    v_low = (p[g] + (k_seg - 1 - torch.arange(k_seg)) * m).unsqueeze(-1).expand(n, k_seg, d)
    start = torch.zeros(n, k_seg, d, dtype=torch.bool)
    start[:, :, 0] = True
    v_flat = torch.where(start, v_high.unsqueeze(-1).expand(n, k_seg, d), v_low)
    turns = k_seg * d
    dones = torch.zeros(n, turns)
    dones[:, -1] = 1
    common = {
        "rewards": rewards.reshape(-1).float(),
        "dones": dones.reshape(-1),
        "traj_ids": torch.arange(n).repeat_interleave(turns),
        "group_ids": torch.zeros(n * turns, dtype=torch.long),
        "turn_idx": torch.arange(turns).repeat(n),
    }
    hier = TurnBatch(
        **common,
        extras={SEG_START: start.reshape(-1), V_HIGH: v_flat.reshape(-1).float(), V_LOW: v_low.reshape(-1).float(),
                V_SWITCH: v_low.reshape(-1).float()},
    )
    flat = TurnBatch(**common, values=v_flat.reshape(-1).float())
    hae_out = run("hae", hier, gamma=1.0, lam=1.0, lam_high=0.95)
    a_high = hae_out.extras[ADV_HIGH].view(n, turns)[:, 0].double()
    a_flat = run("gae", flat, gamma=1.0, lam=1.0).advantages.view(n, turns)[:, 0].double()
    truth = p[g[:, 0]] - m
    for est in (a_high, a_flat):
        err = est - truth
        for choice in (0, 1):
            e = err[g[:, 0] == choice]
            assert abs(float(e.mean())) < 4 * float(e.std()) / math.sqrt(e.numel()), "biased"
    ratio = float((a_high - truth).var() / (a_flat - truth).var())
    assert ratio < 0.9, ratio
