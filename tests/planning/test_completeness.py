"""Plan coverage and completeness on hand-written plans (the planner's reward, docs/planning.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilot_envs.core.task import Subgoal, completeness, oracle_plan_text, plan_coverage

GOALS = (
    Subgoal("find a mug", "find", ("mug",)),
    Subgoal("take the mug", "take", ("mug",)),
    Subgoal("go to the microwave", "go", ("microwave",)),
    Subgoal("heat the mug with the microwave", "heat", ("mug",)),
    Subgoal("go to the cabinet", "go", ("cabinet",)),
    Subgoal("put the mug in the cabinet", "put", ("mug", "cabinet")),
)
COMPLETE = ["find a mug: check countertop 1, cabinet 2", "take the mug", "go to the microwave",
            "heat the mug with the microwave", "go to the cabinet", "put the mug in the cabinet"]
NONE_DONE = (False,) * 6
ALL_DONE = (True,) * 6


def test_a_complete_plan_covers_every_milestone():
    assert plan_coverage(COMPLETE, GOALS) == (True,) * 6
    assert plan_coverage(oracle_plan_text(GOALS), GOALS) == (True,) * 6
    assert completeness(plan_coverage(COMPLETE, GOALS), NONE_DONE) == 0.5
    assert completeness(plan_coverage(COMPLETE, GOALS), ALL_DONE) == 1.0
    assert completeness(plan_coverage(COMPLETE, GOALS), (True, True, False, False, False, False)) == pytest.approx(8 / 12)


def test_a_missing_step_loses_its_milestone():
    plan = [s for s in COMPLETE if not s.startswith("heat")]
    assert plan_coverage(plan, GOALS) == (True, True, True, False, True, True)
    assert completeness(plan_coverage(plan, GOALS), NONE_DONE) == pytest.approx(5 / 12)


def test_wrong_order_counts_the_longest_executable_run():
    plan = ["put the mug in the cabinet", "find a mug", "take the mug"]
    # put (5) before find (0), take (1): the run in the true order is find, take
    assert plan_coverage(plan, GOALS) == (True, True, False, False, False, False)
    backwards = list(reversed(COMPLETE))
    assert sum(plan_coverage(backwards, GOALS)) == 1


def test_extra_steps_neither_add_nor_remove():
    plan = ["dance", *COMPLETE[:3], "look around the room", *COMPLETE[3:], "take the mug"]
    assert plan_coverage(plan, GOALS) == (True,) * 6


def test_empty_and_garbage_plans_cover_nothing():
    assert plan_coverage([], GOALS) == NONE_DONE
    assert plan_coverage(["", "!!!", "\x00", "asdf qwer", "Step 1:"], GOALS) == NONE_DONE
    assert completeness(plan_coverage([], GOALS), NONE_DONE) == 0.0
    assert plan_coverage(COMPLETE, ()) == ()
    assert completeness((), ()) == 0.0


def test_completeness_needs_one_flag_per_milestone():
    with pytest.raises(ValueError, match="milestones"):
        completeness((True,), (True, False))


@given(st.lists(st.sampled_from([*COMPLETE, "dance", "take the cabinet", "find a knife", ""]), max_size=12),
       st.lists(st.booleans(), min_size=6, max_size=6))
def test_completeness_is_bounded_and_monotone_in_what_was_reached(plan, done):
    cov = plan_coverage(plan, GOALS)
    c = completeness(cov, done)
    assert 0.0 <= c <= 1.0
    assert completeness(cov, ALL_DONE) >= c >= completeness(cov, NONE_DONE)
    # covering in order is never more than the plan's matched steps
    assert sum(cov) <= len(plan)
