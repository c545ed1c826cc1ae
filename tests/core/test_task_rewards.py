"""Subgoals, plan scoring and reward modes, against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilot_envs.core.rewards import RewardConfig, finite_number, reward
from pilot_envs.core.task import Subgoal, flags_from_stage, match_steps, oracle_plan_text, plan_score, plan_step

GOALS = (
    Subgoal("find a mug", "find", ("mug",)),
    Subgoal("take the mug", "take", ("mug",)),
    Subgoal("go to the sinkbasin", "go", ("sinkbasin",)),
    Subgoal("clean the mug with the sinkbasin", "clean", ("mug",)),
    Subgoal("go to the cabinet", "go", ("cabinet",)),
    Subgoal("put the mug in the cabinet", "put", ("mug", "cabinet")),
)


def test_oracle_plan_scores_one():
    assert plan_score(oracle_plan_text(GOALS), GOALS) == pytest.approx(1.0)


def test_plan_score_hand_computed():
    # matches: find(0), clean(3), put(5) -> LIS 3 of 6 -> recall 0.5; precision 3/4
    plan = ["locate a mug", "wash the mug", "dance", "place the mug in the cabinet"]
    assert match_steps(plan, GOALS) == [0, 3, None, 5]
    assert plan_score(plan, GOALS) == pytest.approx(0.5 * (0.75 + 0.25 * 0.75))


def test_plan_score_penalises_wrong_order():
    ordered = ["find a mug", "take the mug", "put the mug in the cabinet"]
    shuffled = ["put the mug in the cabinet", "take the mug", "find a mug"]
    assert plan_score(ordered, GOALS) > plan_score(shuffled, GOALS)
    assert plan_score([], GOALS) == 0.0
    assert plan_score(["sing a song"], GOALS) == 0.0


def test_plan_step():
    plan = ["find a mug", "take the mug", "go to the sinkbasin"]
    assert plan_step(plan, GOALS, flags_from_stage(0, 6)) == 0
    assert plan_step(plan, GOALS, flags_from_stage(2, 6)) == 2
    assert plan_step(plan, GOALS, flags_from_stage(6, 6)) == 3


@given(st.lists(st.text(max_size=40), max_size=10))
def test_plan_score_in_unit_interval(plan):
    assert 0.0 <= plan_score(plan, GOALS) <= 1.0


def test_flags_from_stage():
    assert flags_from_stage(2, 4) == (True, True, False, False)
    assert flags_from_stage(9, 3) == (True, True, True)


@pytest.mark.parametrize(
    ("mode", "kwargs", "expected"),
    [
        ("sparse", dict(won=True), 10.0),
        ("sparse", dict(won=False), 0.0),
        ("progress", dict(won=False, progress_before=0.25, progress_after=0.5), 0.25),
        ("progress", dict(won=True, progress_before=0.75, progress_after=1.0), 10.25),
        ("milestone", dict(won=False, new_milestones=2), 0.5),
        ("sparse", dict(won=False, action_valid=False), -0.1),
    ],
)
def test_reward_modes(mode, kwargs, expected):
    base = dict(won=False, progress_before=0.0, progress_after=0.0, new_milestones=0, num_subgoals=4, action_valid=True)
    cfg = RewardConfig(mode=mode, success_reward=10.0, invalid_action_penalty=0.1)
    assert reward(cfg, **{**base, **kwargs}) == pytest.approx(expected)


def test_reward_config_validation():
    with pytest.raises(ValueError, match="reward_mode"):
        RewardConfig(mode="dense")
    with pytest.raises(ValueError, match="gamma"):
        RewardConfig(gamma=2.0)
    with pytest.raises(ValueError, match="non-negative"):
        RewardConfig(invalid_action_penalty=-1)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("success_reward", math.nan, ValueError),
        ("success_reward", "1.0", TypeError),
        ("success_reward", None, TypeError),
        ("success_reward", True, TypeError),
        ("success_reward", 10**400, ValueError),
        ("invalid_action_penalty", math.inf, ValueError),
        ("invalid_action_penalty", np.True_, TypeError),
        ("gamma", "0.9", TypeError),
        ("gamma", np.float32("nan"), ValueError),
        ("milestone_bonus", "x", TypeError),
        ("milestone_bonus", -math.inf, ValueError),
        ("mode", 3, TypeError),
    ],
    ids=lambda v: "huge-int" if isinstance(v, int) and v > 2**64 else None,
)
def test_reward_config_checks_types_and_finiteness(field, value, error):
    with pytest.raises(error, match="reward_mode" if field == "mode" else field):
        RewardConfig(**{field: value})


@given(st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_finite_numbers_pass_as_floats(x):
    assert finite_number("x", x) == float(x) and type(finite_number("x", np.float32(x))) is float
