"""Advantage estimators against hand-computed numbers, invariants, and HAE's statistical claim."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch, standardise
from trainers.core.registry import ADVANTAGES, Registry

EPS = 1e-6


def run(name: str, batch: TurnBatch, **cfg: float) -> AdvantageOutput:
    return ADVANTAGES.get(name)(batch, AdvantageConfig(**cfg))


def close(actual: torch.Tensor, expected: list[float], tol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


# ------------------------------------------------------------------------------------ registry, batch


def test_registry_lists_estimators_and_names_unknown() -> None:
    assert {"grpo", "rloo", "gae", "gigpo"} <= set(ADVANTAGES.names())  # + the estimators methods register
    with pytest.raises(KeyError, match=r"unknown advantage estimator 'ppo'; known: .*gae, gigpo, grpo"):
        ADVANTAGES.get("ppo")


def test_registry_rejects_duplicate_names() -> None:
    reg: Registry[int] = Registry("thing", autoload=False)
    reg.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(2)
    assert reg.names() == ("a",) and "a" in reg and reg.get("a") == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"traj_ids": [0, 1, 0]}, "contiguous"),
        ({"turn_idx": [0, 2, 0]}, "increase by 1"),
        ({"group_ids": [0, 1, 1]}, "constant within"),
        ({"dones": [1.0, 0.0, 1.0]}, "only the last turn"),
        ({"dones": [0.0, 0.5, 1.0]}, "0 or 1"),
    ],
)
def test_turnbatch_validation(kwargs: dict[str, list[float]], match: str) -> None:
    base = {
        "rewards": [0.0, 0.0, 0.0],
        "dones": [0.0, 1.0, 1.0],
        "traj_ids": [0, 0, 1],
        "group_ids": [0, 0, 1],
        "turn_idx": [0, 1, 0],
    }
    base.update(kwargs)
    tensors = {
        k: torch.tensor(v, dtype=torch.float32 if k in ("rewards", "dones") else torch.long)
        for k, v in base.items()
    }
    with pytest.raises(ValueError, match=match):
        TurnBatch(**tensors)


def test_estimator_without_needed_field_says_which() -> None:
    with pytest.raises(ValueError, match="values"):
        run("gae", TurnBatch.from_nested([[1.0]]))


# ------------------------------------------------------------------------------------------- GRPO, RLOO

# Group 0: R = [1, 3]; group 1: R = [0, 0, 3]; group 2: R = [5] (alone).
GROUPED = TurnBatch.from_nested([[0, 1], [1, 2], [0], [0, 0], [1, 2], [5]], group_ids=[0, 0, 1, 1, 1, 2])


def test_grpo_by_hand() -> None:
    # group 0: mean 2, unbiased std sqrt((1 + 1) / 1) = sqrt 2 -> A = -+1 / sqrt 2
    # group 1: mean 1, deviations (-1, -1, 2), unbiased var (1 + 1 + 4) / 2 = 3 -> A = (-1, -1, 2) / sqrt 3
    # group 2: one member -> 0.  Each trajectory's A on each of its turns.
    a, b = 1 / (math.sqrt(2) + EPS), 1 / (math.sqrt(3) + EPS)
    out = run("grpo", GROUPED)
    close(out.advantages, [-a, -a, a, a, -b, -b, -b, 2 * b, 2 * b, 0.0])
    assert out.returns is None


def test_rloo_by_hand() -> None:
    # group 0: 1 - 3 = -2, 3 - 1 = 2; group 1: 0 - (0 + 3)/2 = -1.5 (twice), 3 - 0 = 3; alone -> 0
    close(run("rloo", GROUPED).advantages, [-2, -2, 2, 2, -1.5, -1.5, -1.5, 3, 3, 0])


def test_grpo_without_std_is_group_centring() -> None:
    close(run("grpo", GROUPED, norm_by_std=False).advantages, [-1, -1, 1, 1, -1, -1, -1, 2, 2, 0])


groups_strategy = st.lists(
    st.lists(st.lists(st.floats(-10, 10), min_size=1, max_size=4), min_size=1, max_size=5),
    min_size=1,
    max_size=4,
)


def _flatten_groups(groups: list[list[list[float]]]) -> TurnBatch:
    rewards = [traj for group in groups for traj in group]
    ids = [g for g, group in enumerate(groups) for _ in group]
    return TurnBatch.from_nested(rewards, group_ids=ids)


@settings(max_examples=60, deadline=None)
@given(groups_strategy)
def test_grpo_rloo_group_properties(groups: list[list[list[float]]]) -> None:
    batch = _flatten_groups(groups)
    first = batch.turn_idx == 0
    g = batch.group_ids[first]
    ret = torch.tensor([math.fsum(t) for group in groups for t in group], dtype=torch.float64)
    a_grpo = run("grpo", batch).advantages[first].double()
    a_rloo = run("rloo", batch).advantages[first].double()
    for gid in g.unique():
        sel = g == gid
        n = int(sel.sum())
        # zero mean per group, for both
        assert abs(float(a_grpo[sel].sum())) < 1e-3 and abs(float(a_rloo[sel].sum())) < 1e-3
        if n == 1:
            assert float(a_grpo[sel].abs().sum()) == 0 == float(a_rloo[sel].abs().sum())
            continue
        r = ret[sel]
        # RLOO = n/(n-1) (R - mean); GRPO = (R - mean)/(std + eps), so unit std unless constant
        torch.testing.assert_close(a_rloo[sel], n / (n - 1) * (r - r.mean()), atol=1e-3, rtol=1e-4)
        if float(r.std()) > 1e-2:
            assert abs(float(a_grpo[sel].std()) - 1.0) < 1e-3


# ----------------------------------------------------------------------------------------------- GAE


def test_gae_by_hand_terminated_and_truncated() -> None:
    # r = (1, 0, 2), V = (0.5, 1, 1.5), gamma 0.9, lam 0.8, terminated:
    # t2: delta = 2 - 1.5 = 0.5;            A2 = 0.5
    # t1: delta = 0 + 0.9*1.5 - 1 = 0.35;   A1 = 0.35 + 0.72*0.5 = 0.71
    # t0: delta = 1 + 0.9*1 - 0.5 = 1.4;    A0 = 1.4 + 0.72*0.71 = 1.9112
    # second trajectory r = (5), V = (1): A = 4 (no leakage from the first)
    batch = TurnBatch.from_nested([[1, 0, 2], [5]], values=[[0.5, 1, 1.5], [1]])
    out = run("gae", batch, gamma=0.9, lam=0.8)
    close(out.advantages, [1.9112, 0.71, 0.5, 4.0])
    assert out.returns is not None
    close(out.returns, [2.4112, 1.71, 2.0, 5.0])
    # truncated after t2 with V(s_3) = 2: delta2 = 2 + 0.9*2 - 1.5 = 2.3; A1 = 0.35 + 0.72*2.3 = 2.006;
    # A0 = 1.4 + 0.72*2.006 = 2.84432
    trunc = TurnBatch.from_nested([[1, 0, 2]], terminated=[False], last_values=[2.0], values=[[0.5, 1, 1.5]])
    close(run("gae", trunc, gamma=0.9, lam=0.8).advantages, [2.84432, 2.006, 2.3])


trajectory_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=6),
        st.booleans(),
        st.floats(-5, 5),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(trajectory_strategy, st.floats(0.5, 1.0))
def test_gae_lambda_one_is_discounted_return_minus_value(trajs: list, gamma: float) -> None:
    # lam = 1 telescopes: A_t = sum_k gamma^k r_{t+k} + gamma^{T-t} (1 - done) V_boot - V_t
    rewards = [[r for r, _ in steps] for steps, _, _ in trajs]
    values = [[v for _, v in steps] for steps, _, _ in trajs]
    term = [t for _, t, _ in trajs]
    boot = [b for _, _, b in trajs]
    batch = TurnBatch.from_nested(rewards, terminated=term, last_values=boot, values=values)
    expected = []
    for rs, vs, done, vb in zip(rewards, values, term, boot, strict=True):
        g = 0.0 if done else vb
        rtg = []
        for r in reversed(rs):
            g = r + gamma * g
            rtg.append(g)
        expected += [g - v for g, v in zip(reversed(rtg), vs, strict=True)]
    close(run("gae", batch, gamma=gamma, lam=1.0).advantages, expected, tol=1e-3)


# --------------------------------------------------------------------------------------------- GiGPO


def test_gigpo_by_hand() -> None:
    # group 0: a: states (A, B), r = (0, 1), R = 1;  b: states (A, C), r = (0, 0), R = 0
    # group 1: c: state (A), r = (5): same key, other task -> its own anchor (alone -> 0), alone in group.
    # A^E: mean .5, unbiased std sqrt(.5) -> +-.5/(sqrt(.5)+eps) ~ +-0.70711 on a's and b's turns.
    # G (gamma .95): a: (0.95, 1), b: (0, 0). Anchor (0, A) = {0.95, 0}: mean .475,
    # std = .475 sqrt 2 -> A^S = +-0.70711; anchors B, C, (1, A) alone -> 0.
    batch = TurnBatch.from_nested(
        [[0, 1], [0, 0], [5]], group_ids=[0, 0, 1], state_keys=[["A", "B"], ["A", "C"], ["A"]]
    )
    e = 0.5 / (math.sqrt(0.5) + EPS)
    s = 0.475 / (0.475 * math.sqrt(2) + EPS)
    out = run("gigpo", batch)
    close(out.extras["step_return"], [0.95, 1, 0, 0, 5])
    close(out.extras["adv_episode"], [e, e, -e, -e, 0])
    close(out.extras["adv_step"], [s, 0, -s, 0, 0])
    close(out.advantages, [e + s, e, -e - s, -e, 0])
    close(run("gigpo", batch, gigpo_omega=0.5).advantages, [e + s / 2, e, -e - s / 2, -e, 0])
    # anchor groups: (0, A) has 2 turns, the other three are alone -> sizes (2, 1, 2, 1, 1)
    assert out.stats == pytest.approx({"anchor_size": 7 / 5, "anchor_shared_frac": 2 / 5})


@settings(max_examples=40, deadline=None)
@given(groups_strategy)
def test_gigpo_with_distinct_states_is_grpo(groups: list[list[list[float]]]) -> None:
    batch = _flatten_groups(groups)
    keys = tuple(f"s{i}" for i in range(batch.num_turns))
    distinct = dataclasses.replace(batch, state_keys=keys)
    torch.testing.assert_close(run("gigpo", distinct).advantages, run("grpo", batch).advantages)
    assert run("gigpo", distinct).stats == {"anchor_size": 1.0, "anchor_shared_frac": 0.0}


def test_standardise_masks() -> None:
    # masked entries (1, 3): mean 2, unbiased std sqrt 2 -> (-1, 1)/sqrt 2; unmasked -> 0
    x = torch.tensor([1.0, 100.0, 3.0])
    half = 1 / math.sqrt(2)
    close(standardise(x, torch.tensor([True, False, True]), eps=0.0), [-half, 0, half])
    close(standardise(x, torch.tensor([False, True, False])), [0, 0, 0])
