"""The planner's seat as a Gymnasium env (PlannerEnv): its contract, reward and bad input."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_envs.alfworld.plans import located_plan
from pilot_envs.core.contract import INFO_KEYS, text_env
from pilot_envs.multiagent.planner_env import PLAN_SPENT, PlannerEnv
from trainers.core.prompts import format_plan

OPTS = {"split": "valid_unseen", "task_index": 5}


def _plan_text(info):
    return f"<plan>{format_plan(located_plan(info['subgoals'], info['expert_plan']))}</plan>"


def test_gymnasium_checker_and_contract():
    env = PlannerEnv("PilotALFWorldSmall-v0")
    check_env(env, skip_render_check=True)
    base = text_env(env)
    assert base.plan_mode == "agent" and base.splits()["valid_unseen"] == 134 and base.domain
    with pytest.raises(ValueError, match="agent"):
        base.set_plan_mode("oracle")


def test_the_oracle_plan_is_complete_and_paid_once_at_the_end():
    env = PlannerEnv("PilotALFWorld-v0", format_weight=0.1)
    obs, info = env.reset(seed=0, options=OPTS)
    assert set(INFO_KEYS) <= set(info) and info["completeness"] == 0.0
    assert obs in env.observation_space
    obs, reward, term, trunc, info = env.step(_plan_text(info))
    assert term and not trunc and info["won"] and info["completeness"] == 1.0
    assert reward == pytest.approx(1.0) and info["executor_steps"] > 0 and obs in env.observation_space
    with pytest.warns(UserWarning, match="after the episode ended"):
        _, again, term2, _, _ = env.step(_plan_text(info))
    assert again == 0.0 and term2


def test_no_plan_costs_the_format_term_and_returns_the_turn():
    env = PlannerEnv("PilotALFWorld-v0", max_episode_steps=3)
    env.reset(seed=0, options=OPTS)
    obs, reward, term, trunc, info = env.step("I would rather not.")
    assert reward == pytest.approx(-0.1) and not (term or trunc) and info["executor_done"]
    assert info["executor_steps"] == 0 and obs["request"] == PLAN_SPENT and info["active_agent"] == "planner"
    _, _, _, trunc, _ = env.step("<switch>KEEP</switch>")  # nothing to keep: the cap of 3 ends the episode
    assert not trunc
    _, reward, _, trunc, _ = env.step("<switch>KEEP</switch>")
    assert trunc and reward == pytest.approx(-0.1)


def test_a_spent_plan_hands_back_and_a_second_plan_is_paid_its_gain():
    env = PlannerEnv("PilotALFWorld-v0")
    _, info = env.reset(seed=0, options=OPTS)
    first = located_plan(info["subgoals"], info["expert_plan"])[:2]  # find and take only
    _, r1, term, trunc, info = env.step(f"<plan>{format_plan(first)}</plan>")
    assert not (term or trunc) and info["executor_done"] and 2 <= sum(info["subgoals_done"]) < len(info["subgoals"])
    c1 = info["completeness"]
    assert r1 == pytest.approx(c1)
    rest = [s.split(":")[0] for s in info["subgoals"]]
    _, r2, term, _, info = env.step(f"<plan>{format_plan(rest)}</plan>")
    assert term and info["completeness"] == 1.0 and r1 + r2 == pytest.approx(1.0)
    assert info["executor_steps"] <= len(info["subgoals"]) + 2  # it holds the object: no second search


def test_milestones_only_at_a_tight_cap_lose_to_the_located_plan():
    env = PlannerEnv("PilotALFWorld-v0", max_episode_steps=12)
    _, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": 0})
    located = _plan_text(info)
    _, r_plain, *_ = env.step(f"<plan>{format_plan(info['subgoals'])}</plan>")
    env.reset(seed=0, options={"split": "valid_unseen", "task_index": 0})
    _, r_located, *_ = env.step(located)
    assert r_located > r_plain


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=300))
def test_any_planner_text_is_safe(text):
    env = PlannerEnv("PilotALFWorldSmall-v0", max_episode_steps=20)
    env.reset(seed=1, options=OPTS)
    obs, reward, term, trunc, info = env.step(text)
    assert -0.1 <= reward <= 1.0 and obs in env.observation_space
    assert term or trunc or info["active_agent"] == "planner"


def test_bad_input_is_clear():
    with pytest.raises(ValueError, match="unknown executor"):
        PlannerEnv(executor="nobody")
    with pytest.raises(TypeError, match="executor must be"):
        PlannerEnv(executor=42)
    with pytest.raises(ValueError):
        PlannerEnv(completeness_weight=float("nan"))
    env = PlannerEnv("PilotALFWorldSmall-v0")
    with pytest.raises(gym.error.ResetNeeded):
        env.step("<plan>Step 1: look</plan>")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="actions are text"):
        env.step(3)


class Replanner:
    """An executor that asks for a new plan after one command: control returns to the planner."""

    def reset(self, seed=None):
        self.n = 0

    def act(self, obs, info):
        self.n += 1
        return "look" if self.n % 2 else "<replan>lost</replan>"


def test_an_executor_can_hand_the_turn_back():
    env = PlannerEnv("PilotALFWorldSmall-v0", executor=Replanner())
    env.reset(seed=0, options=OPTS)
    obs, reward, term, trunc, info = env.step("<plan>Step 1: look</plan>")
    assert not (term or trunc) and reward == 0.0 and info["trigger"] == "request" and obs["request"] == "lost"
    assert info["executor_steps"] == 2
