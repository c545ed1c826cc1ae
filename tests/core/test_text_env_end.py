"""TextTaskEnv's "Episode End" contract on a scripted backend: a terminated episode (won or lost) is a no-op
until reset; truncation stays TimeLimit's."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit
from hypothesis import given, settings
from hypothesis import strategies as st

import pilot_envs  # noqa: F401
from pilot_envs import checks
from pilot_envs.core.backend import Backend, Outcome, TaskMeta
from pilot_envs.core.task import Subgoal
from pilot_envs.core.text_env import TextTaskEnv

GOALS = (Subgoal("open the box", "open", ("box",)), Subgoal("take the key", "take", ("key",)))


class ScriptedBackend(Backend):
    """Two milestones: ``open box`` then ``take key`` wins; ``break key`` loses. Counts every call."""

    max_subgoals = 4
    max_commands = 8

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stage_reached = 0
        self.moves = 0

    def load(self, rng: np.random.Generator, options: dict[str, Any]) -> TaskMeta:
        self.calls.append("load")
        self.stage_reached, self.moves = 0, 0
        return TaskMeta("You see a box.", "take the key", GOALS, ("Open the box.", "Take the key."), "toy", "toy/0", "train")

    def execute(self, command: str) -> Outcome:
        self.calls.append("execute")
        self.moves += 1
        if command == "open box" and self.stage_reached == 0:
            self.stage_reached = 1
            return Outcome("You open the box.", valid=True)
        if command == "take key" and self.stage_reached == 1:
            self.stage_reached = 2
            return Outcome("You take the key.", valid=True, won=True)
        if command == "break key":
            return Outcome("The key breaks.", valid=True, lost=True)
        return Outcome("Nothing happens.", valid=False)

    def admissible_commands(self) -> tuple[str, ...]:
        self.calls.append("admissible_commands")
        return ("break key", "look", "open box", "take key")

    def stage(self) -> int:
        self.calls.append("stage")
        return self.stage_reached

    def expert_plan(self) -> tuple[str, ...]:
        self.calls.append("expert_plan")
        return ("open box", "take key")[self.stage_reached :]

    def state_hash(self) -> str:
        self.calls.append("state_hash")
        return f"{self.stage_reached}/{self.moves}"


class ToyEnv(TextTaskEnv):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ScriptedBackend(), **kwargs)


def finish(env: ToyEnv, ending: tuple[str, ...]) -> tuple[dict, float, bool, dict]:
    env.reset(seed=0)
    for command in ending:
        obs, r, term, trunc, info = env.step(command)
    assert term and not trunc
    return obs, r, term, info


WIN, LOSE = ("open box", "take key"), ("break key",)
AFTER = st.lists(st.one_of(st.sampled_from(["take key", "break key", "open box", "help", "", "<think>x</think>",
                                            "<plan>Step 1: take key</plan>", "look"]), st.text(max_size=40)),
                 min_size=1, max_size=6)


@pytest.mark.parametrize("ending", [WIN, LOSE], ids=["won", "lost"])
@pytest.mark.parametrize("reward_mode", ["sparse", "progress", "milestone"])
@settings(max_examples=20, deadline=None)
@given(after=AFTER)
def test_a_terminated_episode_is_a_no_op(ending, reward_mode, after):
    env = ToyEnv(reward_mode=reward_mode, success_reward=5.0, invalid_action_penalty=0.5, plan_mode="agent")
    obs, r, _, info = finish(env, ending)
    assert info["won"] is (ending == WIN) and info["lost"] is (ending == LOSE)
    env.backend.calls.clear()
    checks.check_no_op_after_termination(env, obs, info, after, elapsed=len(ending))
    assert env.backend.calls == ["state_hash"]  # only the check's own look at the world
    assert info["progress"] == (1.0 if ending == WIN else 0.0)


def test_the_warning_is_once_per_episode_and_reset_rearms_it():
    env = ToyEnv()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            finish(env, WIN)
            for _ in range(3):
                env.step("look")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("Call reset()" in m and "terminated" in m for m in messages), messages
    _, r, term, _ = finish(env, WIN)
    assert r == 1.0 and term  # a new episode pays again


def test_after_the_end_bad_types_still_raise_and_render_keeps_the_last_turn():
    env = ToyEnv(render_mode="ansi")
    finish(env, WIN)
    frame = env.render()
    with pytest.raises(TypeError, match="actions are text"):
        env.step(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.step("open box")
    assert env.render() == frame


def test_returned_objects_are_copies():
    env = ToyEnv()
    obs, _, _, info = finish(env, WIN)
    obs["subgoals_done"][:] = 0
    info["won"] = "mutated"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again, r, term, _, info2 = env.step("look")
        again["progress"][0] = -1.0
        third, *_ = env.step("look")
    assert again["subgoals_done"].tolist()[:2] == [1, 1] and info2["won"] is True
    assert third["progress"][0] == 1.0


def test_pickled_terminated_env_stays_terminated():
    env = ToyEnv()
    obs, _, _, info = finish(env, WIN)
    clone = pickle.loads(pickle.dumps(env))
    clone.backend.calls.clear()
    checks.check_no_op_after_termination(clone, obs, info, ["take key", "look"], elapsed=2)
    assert clone.backend.calls == ["state_hash"]


def test_time_limit_counts_the_no_op_steps():
    env = TimeLimit(ToyEnv(), max_episode_steps=4)
    env.reset(seed=0)
    env.step("open box")
    _, r, term, trunc, _ = env.step("take key")
    assert (r, term, trunc) == (1.0, True, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert env.step("look")[1:4] == (0.0, True, False)
        assert env.step("look")[1:4] == (0.0, True, True)  # the 4th step: TimeLimit's truncation, still no pay


def test_after_truncation_the_env_is_not_terminated_and_timelimit_owns_it():
    """Documented, not changed: a truncated episode is not terminated; stepping it again is TimeLimit's business
    (it answers truncated=True) and the world still moves."""
    env = gym.make("PilotALFWorldSmall-v0", max_episode_steps=2)
    env.reset(seed=0)
    env.step("look")
    _, _, term, trunc, info = env.step("look")
    assert (term, trunc) == (False, True)
    _, _, term, trunc, info = env.step(info["expert_action"])
    assert (term, trunc) == (False, True) and info["command"] != ""

