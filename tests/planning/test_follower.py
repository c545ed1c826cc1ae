"""The plan follower and the plans of the planning setting, on the native ALFWorld engine."""

from __future__ import annotations

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pilot_envs  # noqa: F401  (registers the envs)
from pilot_envs.alfworld.follower import PlanFollower, Step, read_step, rooms_receptacles
from pilot_envs.alfworld.plans import (
    DEGRADATIONS,
    SearchPrior,
    degrade,
    find_object,
    located_plan,
    prior_plan,
    search_places,
)

ROOM = ("cabinet 1", "cabinet 2", "countertop 1", "fridge 1", "microwave 1", "sinkbasin 1")


def test_read_step_finds_verb_object_and_places_in_order():
    assert read_step("find a mug: check cabinet 2, countertop 1", ROOM) == Step("find", "mug", ("cabinet 2", "countertop 1"))
    assert read_step("Find the first mug in the cabinet", ROOM) == Step("find", "mug", ("cabinet 1", "cabinet 2"))
    assert read_step("heat the mug with the microwave", ROOM) == Step("heat", "mug", ("microwave 1",))
    assert read_step("put the second mug in cabinet 2", ROOM) == Step("put", "mug", ("cabinet 2",))
    assert read_step("go to the sinkbasin", ROOM) == Step("go", None, ("sinkbasin 1",))
    assert read_step("cabinet 9 mug", ROOM) is None  # no verb
    assert read_step("", ROOM) is None


@given(st.text(max_size=80))
def test_any_step_text_is_read_without_error(text):
    step = read_step(text, ROOM)
    assert step is None or set(step.places) <= set(ROOM)


def _play(env_id, index, plan, cap=50):
    env = gym.make(env_id, plan_mode="agent", max_episode_steps=cap)
    obs, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": index})
    follower = PlanFollower()
    steps = 0
    while True:
        cmd = follower.act({**obs, "plan": plan}, info)
        if cmd is None:
            return info, steps
        obs, _, term, trunc, info = env.step(cmd)
        steps += 1
        if term or trunc:
            return info, steps


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 133), st.sampled_from(["PilotALFWorld-v0", "PilotALFWorldSmall-v0"]))
def test_the_oracle_located_plan_always_succeeds(index, env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": index})
    plan = located_plan(info["subgoals"], info["expert_plan"])
    assert [find_object(g) is not None for g in info["subgoals"]] == [": check " in s for s in plan]
    won, steps = _play(env_id, index, plan)
    assert won["won"]
    assert steps <= len(info["expert_plan"]) + 2 * sum(": check " in s for s in plan)


def test_no_plan_means_no_action_and_a_new_plan_restarts():
    follower = PlanFollower()
    obs = {"plan": (), "admissible_commands": ["go to cabinet 1", "look"]}
    assert follower.act(obs, {}) is None
    assert follower.act({**obs, "plan": ("go to the cabinet",)}, {}) == "go to cabinet 1"
    assert follower.act({**obs, "plan": ("go to the cabinet",)}, {}) is None  # done
    assert rooms_receptacles(["go to cabinet 1", "take mug 1 from cabinet 1", "go to fridge 2"]) == ("cabinet 1", "fridge 2")


def test_search_order_decides_the_steps():
    env = gym.make("PilotALFWorld-v0")
    _, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": 0})
    located = located_plan(info["subgoals"], info["expert_plan"])
    _, fast = _play("PilotALFWorld-v0", 0, located)
    _, slow = _play("PilotALFWorld-v0", 0, tuple(info["subgoals"]))
    assert fast < slow


def test_prior_and_degradations():
    prior = SearchPrior()
    prior.add(["go to cabinet 2", "open cabinet 2", "take mug 1 from cabinet 2", "go to desk 1", "use desklamp 1"])
    prior.add(["go to countertop 1", "take mug 3 from countertop 1"])
    prior.add(["go to countertop 2", "take mug 2 from countertop 2"])
    assert search_places(["go to desk 1", "use desklamp 1"]) == [("desklamp", "desk 1")]
    assert prior.as_dict() == {"desklamp": {"desk": 1}, "mug": {"cabinet": 1, "countertop": 2}}
    room = ("cabinet 1", "countertop 1", "countertop 2", "fridge 1")
    assert prior.order("mug", room) == ["countertop 1", "countertop 2", "cabinet 1"]
    assert SearchPrior(prior.as_dict()).as_dict() == prior.as_dict()
    plan = prior_plan(("find a mug", "take the mug"), room, prior)
    assert plan == ("find a mug: check countertop 1, countertop 2, cabinet 1", "take the mug")
    good = ("find a mug: check fridge 1", "take the mug", "go to the cabinet", "put the mug in the cabinet")
    for how in DEGRADATIONS:
        bad = degrade(good, how, room, seed=3)
        assert bad != good and bad == degrade(good, how, room, seed=3)
    assert degrade(good, "wrong places first", room, 0)[0].endswith(", fridge 1")
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(good, "nope", room, 0)
