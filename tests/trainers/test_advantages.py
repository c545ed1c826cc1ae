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
    assert set(ADVANTAGES.names()) == {"grpo", "rloo", "gae", "gigpo", "hae"}
    with pytest.raises(KeyError, match="known: gae, gigpo, grpo, hae, rloo"):
        ADVANTAGES.get("ppo")


def test_registry_rejects_duplicate_names() -> None:
    reg: Registry[int] = Registry("thing")
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
        seg_start=[starts],
        v_low=[v.get("v_low", V_L[:n])],
        v_high=[v.get("v_high", V_H[:n])],
        v_switch=[v.get("v_switch", V_B[:n])],
    )


def test_hae_one_segment_by_hand() -> None:
    # low level = the GAE example above: A^L = (1.9112, 0.71, 0.5), R^L = A^L + V_L
    # high: Rseg = 1 + 0.9*0 + 0.81*2 = 2.62, done -> A^H = 2.62 - V_H(0) = 2.62 - 0.6 = 2.02
    # switch: G^b = (1 + 0.9*1.8, 0 + 0.9*2, 2) = (2.62, 1.8, 2); A^b = G^b - V_b = (2.52, 1.6, 1.7)
    out = run("hae", _hae_batch([1, 0, 2], [1, 0, 0]), **HAE_CFG)
    close(out.advantages, [1.9112, 0.71, 0.5])
    assert out.returns is not None
    close(out.returns, [2.4112, 1.71, 2.0])
    close(out.extras["adv_high"], [2.02, 0, 0])
    close(out.extras["ret_high"], [2.62, 0, 0])
    close(out.extras["ret_switch"], [2.62, 1.8, 2.0])
    close(out.extras["adv_switch"], [2.52, 1.6, 1.7])


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
    close(out.extras["adv_high"], [2.48332, 0, 2.744, 0, 1.2])
    close(out.extras["ret_high"], [3.08332, 0, 3.944, 0, 3.0])
    close(out.extras["ret_switch"], [1.972, 1.08, 3.458, 1.62, 3.0])
    close(out.extras["adv_switch"], [1.872, 0.88, 3.158, 1.22, 2.5])


def test_hae_truncated_by_hand() -> None:
    # as above but truncated after t4: boot^L = V_L(4) = 2.5, boot^H = V_H(s_2) = 1.8
    # low t4: 3 + .9*2.5 - 2.5 = 2.75; high: A2 = 3 + .9*1.8 - 1.8 = 2.82, A1 = 2.258 + .405*2.82 = 3.4001,
    # A0 = 1.372 + .405*3.4001 = 2.7490405; switch t4: G = 3 + .9*2.5 = 5.25
    out = run("hae", _hae_batch([1, 0, 2, 0, 3], [1, 0, 1, 0, 1], terminated=False), **HAE_CFG)
    close(out.advantages, [1.4576, 0.08, 2.0264, -0.38, 2.75])
    close(out.extras["adv_high"], [2.7490405, 0, 3.4001, 0, 2.82])
    close(out.extras["ret_high"], [3.3490405, 0, 4.6001, 0, 4.62])
    close(out.extras["ret_switch"], [1.972, 1.08, 3.458, 1.62, 5.25])


def test_hae_first_turn_always_starts_and_batches_do_not_leak() -> None:
    one = run("hae", _hae_batch([1, 0, 2], [0, 0, 0]), **HAE_CFG)
    close(one.extras["adv_high"], [2.02, 0, 0])
    both = TurnBatch.from_nested(
        [[1, 0, 2, 0, 3], [1, 0, 2]],
        seg_start=[[1, 0, 1, 0, 1], [0, 0, 0]],
        v_low=[V_L, V_L[:3]],
        v_high=[V_H, V_H[:3]],
        v_switch=[V_B, V_B[:3]],
    )
    out = run("hae", both, **HAE_CFG)
    close(out.advantages[5:], one.advantages.tolist())
    close(out.extras["adv_high"], [2.48332, 0, 2.744, 0, 1.2, 2.02, 0, 0])
    close(out.extras["high_mask"], [1, 0, 1, 0, 1, 1, 0, 0])


@pytest.mark.parametrize("terminated", [True, False])
def test_hae_every_turn_a_segment_reduces_to_flat_td(terminated: bool) -> None:
    # d_k = 1 and boot = V_H(t+1): A^H is flat GAE(lam_high) on V_H (a truncated end bootstraps V_H(last));
    # with V_L = V_b = V_H = V, A^L and A^b are both flat GAE with lam = 0 (one-step TD residuals on V).
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(6, generator=g).tolist(), torch.randn(6, generator=g).tolist()
    out = run("hae", _hae_batch(r, [1] * 6, terminated, v_low=v, v_high=v, v_switch=v), **HAE_CFG)
    flat = TurnBatch.from_nested([r], terminated=[terminated], last_values=[v[-1]], values=[v])
    torch.testing.assert_close(out.extras["adv_high"], run("gae", flat, gamma=0.9, lam=0.5).advantages)
    td = run("gae", flat, gamma=0.9, lam=0.0).advantages
    torch.testing.assert_close(out.advantages, td)
    torch.testing.assert_close(out.extras["adv_switch"], td)


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
    torch.testing.assert_close(out.extras["adv_switch"], flat(vb, vl[-1], 1.0))
    close(out.extras["adv_high"], [float(flat(vh, vh[0], 1.0)[0]), 0, 0, 0, 0])
    if terminated:
        zero = [0.0] * 5
        plain = run("hae", _hae_batch(r, [1, 0, 0, 0, 0], v_low=zero, v_high=zero, v_switch=zero), gamma=1.0)
        close(plain.extras["adv_high"], [math.fsum(r), 0, 0, 0, 0])


def test_standardise_masks() -> None:
    # masked entries (1, 3): mean 2, unbiased std sqrt 2 -> (-1, 1)/sqrt 2; unmasked -> 0
    x = torch.tensor([1.0, 100.0, 3.0])
    half = 1 / math.sqrt(2)
    close(standardise(x, torch.tensor([True, False, True]), eps=0.0), [-half, 0, half])
    close(standardise(x, torch.tensor([False, True, False])), [0, 0, 0])


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
        seg_start=start.reshape(-1),
        v_high=v_flat.reshape(-1).float(),
        v_low=v_low.reshape(-1).float(),
        v_switch=v_low.reshape(-1).float(),
    )
    flat = TurnBatch(**common, values=v_flat.reshape(-1).float())
    hae_out = run("hae", hier, gamma=1.0, lam=1.0, lam_high=0.95)
    a_high = hae_out.extras["adv_high"].view(n, turns)[:, 0].double()
    a_flat = run("gae", flat, gamma=1.0, lam=1.0).advantages.view(n, turns)[:, 0].double()
    truth = p[g[:, 0]] - m
    for est in (a_high, a_flat):
        err = est - truth
        for choice in (0, 1):
            e = err[g[:, 0] == choice]
            assert abs(float(e.mean())) < 4 * float(e.std()) / math.sqrt(e.numel()), "biased"
    ratio = float((a_high - truth).var() / (a_flat - truth).var())
    assert ratio < 0.9, ratio
