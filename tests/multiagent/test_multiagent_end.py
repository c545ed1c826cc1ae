"""The PettingZoo envs after the end of an episode, on bad step input, and with bad reward settings."""

from __future__ import annotations

import math
import numbers
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pilot_envs  # noqa: F401
from pilot_envs.multiagent import household_coop_v0, planner_executor_v0

PE_ID = "PilotALFWorldSmall-v0"
SMALL = {"max_receptacles": 6, "max_objects": 8}


def scripted(agent: str, info: dict) -> str:
    """The planner keeps the plan, the executor follows the oracle."""
    return "<switch>KEEP</switch>" if agent == "planner" else (info["expert_action"] or "look")


def our_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "Call reset()" in str(w.message)]


class StepCounter(gym.Wrapper):
    """Counts the steps of planner_executor's wrapped env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return super().step(action)


def count_inner_steps(aec) -> StepCounter:
    raw = aec.unwrapped
    raw.inner = StepCounter(raw.inner)
    return raw.inner


# ------------------------------------------------------------------ planner_executor (AEC)
@pytest.mark.parametrize("make", [planner_executor_v0.env, planner_executor_v0.raw_env], ids=["env", "raw_env"])
def test_planner_executor_aec_after_the_end(make):
    env = make(env_id=PE_ID)
    env.reset(seed=0)
    for agent in env.agent_iter(200):
        _, _, term, trunc, info = env.last()
        if term or trunc:
            break
        env.step(scripted(agent, info))
    assert all(env.terminations.values()) and env.infos["planner"]["won"]
    inner = count_inner_steps(env)
    with pytest.raises(ValueError, match="only valid action is None"):
        env.step("look")  # a done agent's only action is None (PettingZoo's rule)
    while env.agents:
        env.step(None)
        assert all(r == 0 for r in env.rewards.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for action in ("look", None, "take key", None):
            env.step(action)  # nothing happens, no crash
    assert env.agents == [] and env.rewards == {} and inner.steps == 0
    if make is planner_executor_v0.raw_env:  # env() answers with PettingZoo's own order-enforcing warning
        assert len(our_warnings(caught)) == 1, our_warnings(caught)
    env.reset(seed=1)
    assert env.agents == ["planner", "executor"] and env.agent_selection == "planner"


# ------------------------------------------------------------------ planner_executor (Parallel)
def test_planner_executor_parallel_after_the_end():
    par = planner_executor_v0.parallel_env(env_id=PE_ID)
    obs, infos = par.reset(seed=0)
    while par.agents:
        active = infos["planner"]["active_agent"]
        obs, rewards, terms, truncs, infos = par.step({a: scripted(active, infos[a]) for a in par.agents})
    assert all(terms.values()) and rewards["executor"] == 1.0
    inner = count_inner_steps(par)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            out = par.step({"planner": "<plan>Step 1: x</plan>", "executor": "look"})
            assert out == ({}, {}, {}, {}, {})
    assert len(our_warnings(caught)) == 1 and inner.steps == 0


@pytest.mark.parametrize("bad", ["look", ["look"], ("planner", "look"), None, 3])
def test_planner_executor_parallel_step_takes_a_dict(bad):
    par = planner_executor_v0.parallel_env(env_id=PE_ID)
    par.reset(seed=0)
    with pytest.raises(TypeError, match="takes a dict agent -> action"):
        par.step(bad)


def test_planner_executor_parallel_names_the_active_agent_and_unknown_agents():
    par = planner_executor_v0.parallel_env(env_id=PE_ID)
    par.reset(seed=0)
    with pytest.raises(ValueError, match="active agent 'planner'"):
        par.step({"executor": "look"})
    with pytest.raises(ValueError, match="unknown agent"):
        par.step({"planner": "<switch>KEEP</switch>", "Planner": "x"})
    _, _, _, _, infos = par.step({"planner": "<switch>KEEP</switch>"})  # only the active agent's action: fine
    assert infos["executor"]["active_agent"] == "executor"


def test_step_before_reset_is_clear():
    with pytest.raises(gym.error.ResetNeeded):
        planner_executor_v0.raw_env(env_id=PE_ID).step("look")
    with pytest.raises(gym.error.ResetNeeded):
        planner_executor_v0.parallel_env(env_id=PE_ID).step({"planner": "look"})
    with pytest.raises(gym.error.ResetNeeded):
        household_coop_v0.raw_env().step("look")
    with pytest.raises(gym.error.ResetNeeded):
        household_coop_v0.parallel_env().step({"agent_0": "look"})


# ------------------------------------------------------------------ household_coop (Parallel)
def test_household_coop_parallel_after_the_end():
    env = household_coop_v0.parallel_env(**SMALL)
    obs, infos = env.reset(seed=3)
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step({a: infos[a]["expert_action"] or "look" for a in env.agents})
    assert all(terms.values()) and rewards["agent_0"] == 1.0
    world_hash = env.world.state_hash()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert env.step({"agent_0": "look", "agent_1": "take cup 1 from sinkbasin 1"}) == ({}, {}, {}, {}, {})
    assert len(our_warnings(caught)) == 1 and env.world.state_hash() == world_hash


@pytest.mark.parametrize("bad", ["look", ["look"], ("agent_0", "look"), None, 3, b"look"])
def test_household_coop_parallel_step_takes_a_dict(bad):
    env = household_coop_v0.parallel_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"takes a dict agent -> action \(text\), e.g. \{'agent_0': 'look'\}"):
        env.step(bad)


def test_household_coop_rejects_unknown_agents_and_checks_every_action_first():
    env = household_coop_v0.parallel_env()
    _, infos = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"unknown agent\(s\) \['agent_2'\]"):
        env.step({"agent_0": "look", "agent_2": "look"})
    before = env.world.state_hash()
    with pytest.raises(TypeError, match="actions are text"):
        env.step({"agent_0": infos["agent_0"]["expert_action"], "agent_1": 7})
    assert env.world.state_hash() == before  # agent_0's valid action was not applied either


# ------------------------------------------------------------------ household_coop (AEC)
@pytest.mark.parametrize("make", [household_coop_v0.env, household_coop_v0.raw_env], ids=["env", "raw_env"])
def test_household_coop_aec_after_the_end(make):
    env = make(**SMALL)
    env.reset(seed=3)
    for _agent in env.agent_iter(400):
        _, _, term, trunc, info = env.last()
        if term or trunc:
            break
        env.step(info["expert_action"] or "look")
    assert all(env.terminations.values())
    world = env.unwrapped.world
    world_hash = world.state_hash()
    with pytest.raises(ValueError, match="None"):
        env.step("look")
    while env.agents:
        env.step(None)
        assert all(r == 0 for r in env.rewards.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for action in ("look", None, "look"):
            env.step(action)
    assert env.agents == [] and world.state_hash() == world_hash
    if make is household_coop_v0.raw_env:
        assert len(our_warnings(caught)) == 1, our_warnings(caught)


def test_household_coop_aec_rejects_a_non_text_action_at_once():
    env = household_coop_v0.raw_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="actions are text"):
        env.step(3)
    assert env.agent_selection == "agent_0"


# ------------------------------------------------------------------ reward settings are validated at construction
_NOT_A_NUMBER = st.one_of(
    st.sampled_from([None, True, False, np.True_, "1.0", "x", b"1", [1.0], (0.5,), {"a": 1}, 1 + 0j, object()]),
    st.text(max_size=4),
)
_NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("-inf")])


@st.composite
def bad_reward_setting(draw) -> tuple[str, object]:
    name = draw(st.sampled_from(("success_reward", "invalid_action_penalty", "gamma", "milestone_bonus")))
    bad = [_NOT_FINITE, _NOT_A_NUMBER.filter(lambda v: not (name == "milestone_bonus" and v is None))]
    if name == "invalid_action_penalty":
        bad.append(st.floats(max_value=-1e-12, allow_infinity=False, allow_nan=False))
    if name == "gamma":
        bad.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda g: not 0.0 <= g <= 1.0))
    return name, draw(st.one_of(bad))


def expected_error(value: object) -> type[Exception]:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    return ValueError if is_number else TypeError


@pytest.mark.parametrize(
    "make",
    [household_coop_v0.parallel_env, household_coop_v0.raw_env, household_coop_v0.env,
     lambda **kw: planner_executor_v0.env(env_id=PE_ID, **kw)],
    ids=["coop-parallel", "coop-raw", "coop-aec", "planner-executor"],
)
@settings(max_examples=30, deadline=None)
@given(setting=bad_reward_setting())
def test_bad_reward_settings_fail_clearly(make, setting):
    name, value = setting
    with pytest.raises(expected_error(value), match=name):
        make(**{name: value})


@pytest.mark.parametrize("value", [None, True, "0.5", math.nan, math.inf, [1.0]])
def test_bad_plan_reward_weight_fails_clearly(value):
    with pytest.raises(expected_error(value), match="plan_reward_weight"):
        planner_executor_v0.raw_env(env_id=PE_ID, plan_reward_weight=value)


def test_good_reward_settings_become_floats():
    env = household_coop_v0.parallel_env(success_reward=2, gamma=np.float32(0.5), milestone_bonus=np.int64(1))
    cfg = env.reward_config
    assert (cfg.success_reward, cfg.gamma, cfg.milestone_bonus) == (2.0, 0.5, 1.0)
    assert all(type(v) is float for v in (cfg.success_reward, cfg.gamma, cfg.milestone_bonus))
    pe = planner_executor_v0.raw_env(env_id=PE_ID, plan_reward_weight=np.float32(0.5))
    assert type(pe.plan_reward_weight) is float
