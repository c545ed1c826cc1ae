"""The shared loss terms and reward terms against hand-computed numbers and their gradients; the policy-loss
registry holds only policy losses."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.core.losses import entropy_bonus, kl_low_var, masked_mean, ppo_clip, value_clip_loss
from trainers.core.registry import POLICY_LOSSES
from trainers.core.rewards import overlong_penalty


def close(actual: torch.Tensor | float, expected: float | list, tol: float = 1e-5) -> None:
    actual = torch.as_tensor(actual, dtype=torch.float64)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


def test_policy_loss_registry_holds_policy_losses_only() -> None:
    assert POLICY_LOSSES.names() == ("ppo_clip",)
    assert POLICY_LOSSES.get("ppo_clip") is ppo_clip
    with pytest.raises(KeyError, match="unknown policy loss 'overlong_penalty'; known: ppo_clip"):
        POLICY_LOSSES.get("overlong_penalty")


@pytest.mark.parametrize(("field", "value"), [("policy_loss", "overlong_penalty"), ("policy_loss", "value_clip_loss"),
                                              ("advantage", "ppo_clip"), ("prompt_format", "gigpo")])
def test_config_accepts_only_names_of_the_right_registry(field: str, value: str) -> None:
    """A reward term or an estimator's name is not a policy loss (this once validated and failed in the update)."""
    from trainers.grpo import GRPOConfig

    with pytest.raises(ValueError, match=f"{field} must be one of"):
        GRPOConfig(**{field: value})


def test_masked_mean_is_token_mean_and_ignores_padding() -> None:
    # tokens (1, 2) in row 0 and (6) in row 1 -> (1 + 2 + 6) / 3 = 3; per row: 1.5 and 6; empty row -> 0
    x = torch.tensor([[1.0, 2.0, float("nan")], [6.0, float("inf"), 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    close(masked_mean(x, mask), 3.0)
    close(masked_mean(x, mask, dim=-1), [1.5, 6.0, 0.0])
    close(masked_mean(x, torch.zeros_like(mask)), 0.0)


# ------------------------------------------------------------------------------------------------ PPO


def _logp(ratios: list[float]) -> torch.Tensor:
    return torch.tensor([[math.log(r) for r in ratios]], dtype=torch.float64, requires_grad=True)


def test_ppo_clip_by_hand() -> None:
    # ratio (1, 1.5, .5, [1.1 masked]), A (1, 1, -1, -2), eps .2:
    # t0: max(-1, -1) = -1; t1: max(-1.5, -1.2) = -1.2 (clipped); t2: max(.5, .8) = .8 (clipped)
    # loss = (-1 - 1.2 + .8)/3 = -0.466667; clipfrac 2/3
    # approx_kl = mean(r - 1 - ln r) = (0 + (.5 - ln 1.5) + (-.5 + ln 2))/3 = 0.095894
    logp = _logp([1.0, 1.5, 0.5, 1.1])
    adv = torch.tensor([[1.0, 1.0, -1.0, -2.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, stats = ppo_clip(logp, torch.zeros_like(logp), adv, mask)
    close(loss, -1.4 / 3)
    close(stats["clipfrac"], 2 / 3)
    close(stats["approx_kl"], (0.5 - math.log(1.5) - 0.5 + math.log(2)) / 3)
    close(stats["dual_clipfrac"], 0.0)
    # asymmetric clip (DAPO clip-higher): eps_hi .6 lets t1 through: (-1 - 1.5 + .8)/3
    close(ppo_clip(logp, torch.zeros_like(logp), adv, mask, eps_hi=0.6)[0], -1.7 / 3)


def test_ppo_clip_gradient_zero_outside_the_clip_in_the_right_direction() -> None:
    # d/dlogp of -A r is -A r (per token, / 6 tokens). Clipped (gradient 0): A > 0 with r > 1 + eps, and
    # A < 0 with r < 1 - eps. Not clipped (pessimistic side): A > 0 with r < 1 - eps, A < 0 with r > 1 + eps.
    ratios = [1.5, 0.5, 0.5, 1.5, 1.0, 1.1]
    advs = [1.0, -1.0, 1.0, -1.0, 2.0, -2.0]
    logp = _logp(ratios)
    loss, _ = ppo_clip(
        logp, torch.zeros_like(logp), torch.tensor([advs], dtype=torch.float64), torch.ones(1, 6)
    )
    loss.backward()
    assert logp.grad is not None
    close(logp.grad[0], [0.0, 0.0, -0.5 / 6, 1.5 / 6, -2.0 / 6, 2.2 / 6])


def test_ppo_dual_clip_caps_negative_advantages() -> None:
    # r = 4, A = -1: max(4, 1.2) = 4 > c |A| = 3 -> loss 3, gradient 0; r = 2 (< c): untouched, 2.
    logp = _logp([4.0, 2.0])
    loss, stats = ppo_clip(
        logp, torch.zeros_like(logp), torch.tensor([-1.0]).double(), torch.ones(1, 2), dual_clip=3.0
    )
    close(loss, (3.0 + 2.0) / 2)
    close(stats["dual_clipfrac"], 0.5)
    loss.backward()
    assert logp.grad is not None
    close(logp.grad[0], [0.0, 2.0 / 2])
    with pytest.raises(ValueError):
        ppo_clip(logp, logp, torch.ones(1), torch.ones(1, 2), dual_clip=1.0)


def test_ppo_per_row_advantage_broadcasts() -> None:
    logp = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    old = logp + 0.1
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    mask = torch.ones(3, 4)
    torch.testing.assert_close(
        ppo_clip(logp, old, adv, mask)[0], ppo_clip(logp, old, adv[:, None].expand(3, 4), mask)[0]
    )


# ---------------------------------------------------------------------------------------- KL, entropy


def test_kl_low_var_by_hand() -> None:
    # ref - logp = (-1, 1): k = (e^-1 + 1 - 1, e - 1 - 1) = (0.367879, 0.718282); mean 0.543081
    logp = torch.tensor([[0.0, -1.0, 7.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0]])
    kl = kl_low_var(logp, ref, mask)
    close(kl, (math.exp(-1) + math.exp(1) - 2) / 2)
    # dk/dlogp = 1 - exp(ref - logp): (1 - e^-1, 1 - e) / 2
    kl.backward()
    assert logp.grad is not None
    close(logp.grad[0], [(1 - math.exp(-1)) / 2, (1 - math.e) / 2, 0.0])
    close(kl_low_var(logp, ref, mask, max_kl=0.5), (math.exp(-1) + 0.5) / 2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-8, 0), st.floats(-8, 0)), min_size=1, max_size=10))
def test_kl_low_var_nonnegative_and_zero_at_ref(pairs: list[tuple[float, float]]) -> None:
    logp = torch.tensor([[a for a, _ in pairs]], dtype=torch.float64)
    ref = torch.tensor([[b for _, b in pairs]], dtype=torch.float64)
    mask = torch.ones_like(logp)
    assert float(kl_low_var(logp, ref, mask)) >= 0.0
    assert float(kl_low_var(logp, logp, mask)) == 0.0


def test_entropy_bonus_is_token_mean() -> None:
    # (1 + 2 + 6) / 3 = 3
    ent = torch.tensor([[1.0, 2.0, 9.0], [6.0, 9.0, 9.0]])
    close(entropy_bonus(ent, torch.tensor([[1, 1, 0], [1, 0, 0]])), 3.0)


# ----------------------------------------------------------------------------------------------- value


def test_value_clip_loss_by_hand() -> None:
    # v = (.9, 2, .5), v_old = (.8, 1, 0), ret = (1.5, 0, 1), clip .2:
    # t0: v_c = .9, both (.6)^2 = .36; t1: v_c = 1.2, max(4, 1.44) = 4; t2: v_c = .2, max(.25, .64) = .64
    # loss = .5 (.36 + 4 + .64)/3 = 0.833333; clipfrac 1/3
    # grad = (v - ret)/3 where the unclipped term wins: (-.2, 2/3, 0 (clipped))
    v = torch.tensor([0.9, 2.0, 0.5], dtype=torch.float64, requires_grad=True)
    v_old = torch.tensor([0.8, 1.0, 0.0], dtype=torch.float64)
    ret = torch.tensor([1.5, 0.0, 1.0], dtype=torch.float64)
    loss, stats = value_clip_loss(v, v_old, ret, torch.ones(3), clip=0.2)
    close(loss, 2.5 / 3)
    close(stats["clipfrac"], 1 / 3)
    loss.backward()
    assert v.grad is not None
    close(v.grad, [-0.2, 2 / 3, 0.0])


def test_overlong_penalty_by_hand() -> None:
    # Lmax 100, B 20: free up to 80; 85 -> -(85 - 80)/20 = -.25; 100 -> -1; 120 -> -1 (DAPO floor)
    close(overlong_penalty(torch.tensor([50, 80, 85, 100, 120]), 100, 20), [0, 0, -0.25, -1, -1])
    with pytest.raises(ValueError):
        overlong_penalty(torch.tensor([1]), 10, 0)
