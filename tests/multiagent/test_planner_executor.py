"""planner_executor_v0: PettingZoo conformance, turn-taking, rewards, and robustness to any text."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pettingzoo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

import pilot_envs  # noqa: F401
from pilot_envs.checks import obs_equal
from pilot_envs.core.protocol import parse_plan
from pilot_envs.multiagent import planner_executor_v0
from pilot_envs.multiagent._common import cut_block, plan_action

WRAPPED_IDS = ["PilotALFWorld-v0", "PilotALFWorldSmall-v0", "PilotALFWorld-PickTwo-v0"]
SECTIONS = ("Description", "Agents", "Action Space", "Observation Space", "Rewards", "Episode End",
            "Information", "Arguments", "Version History")


def oracle_plan(info: dict) -> str:
    return "<plan>" + " ".join(f"Step {i + 1}: {s}." for i, s in enumerate(info["subgoals"])) + "</plan>"


def scripted(agent: str, info: dict) -> str:
    """The example's team: the planner writes the oracle plan, the executor follows the expert."""
    return oracle_plan(info) if agent == "planner" else (info["expert_action"] or "look")


def play(env, seed: int, policy=scripted, limit: int = 500) -> list[tuple]:
    """Run an AEC episode; returns (agent, action, reward, terminated, truncated, info) per turn."""
    env.reset(seed=seed)
    turns = []
    for agent in env.agent_iter(limit):
        _, reward, term, trunc, info = env.last()
        action = None if term or trunc else policy(agent, info)
        turns.append((agent, action, reward, term, trunc, info))
        env.step(action)
    return turns


def test_card_and_registry():
    doc = planner_executor_v0.raw_env.__doc__
    for section in SECTIONS:
        assert f"## {section}" in doc, section
    aec = pettingzoo.make("aec", "pilot_envs/planner_executor_v0", env_id="PilotALFWorldSmall-v0")
    par = pettingzoo.make("parallel", "pilot_envs/planner_executor_v0", env_id="PilotALFWorldSmall-v0")
    assert isinstance(aec, pettingzoo.AECEnv) and isinstance(par, pettingzoo.ParallelEnv)
    assert isinstance(aec.unwrapped, planner_executor_v0.raw_env)
    assert aec.unwrapped.inner.spec.id == "PilotALFWorldSmall-v0"


@pytest.mark.parametrize("env_id", WRAPPED_IDS)
def test_pettingzoo_api(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(planner_executor_v0.env(env_id=env_id), num_cycles=60)
        parallel_api_test(planner_executor_v0.parallel_env(env_id=env_id), num_cycles=60)


@pytest.mark.parametrize("env_id", WRAPPED_IDS)
def test_pettingzoo_seed(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_test(lambda: planner_executor_v0.env(env_id=env_id, replan_every=3), num_cycles=40)
        parallel_seed_test(lambda: planner_executor_v0.parallel_env(env_id=env_id, replan_every=3), num_cycles=40)


@pytest.mark.parametrize("env_id", WRAPPED_IDS)
def test_scripted_team_solves_with_the_single_agent_text(env_id):
    env = planner_executor_v0.env(env_id=env_id)
    turns = play(env, seed=7)
    final = turns[-1]
    assert final[3] and final[5]["won"], "the oracle planner + expert executor must solve the task"
    assert {t[0] for t in turns[-2:]} == {"planner", "executor"} and all(t[3] and not t[4] for t in turns[-2:])
    # both agents were paid the success reward (sparse mode): the last turn's rewards dict says so
    assert final[5]["rewards"] == {"planner": 1.0, "executor": 1.0} and final[5]["team_reward"] == 1.0
    # the executor's world steps read exactly like the single-agent env played with the same commands
    single = gym.make(env_id)
    obs, info = single.reset(seed=7)
    env.reset(seed=7)
    for agent in env.agent_iter(500):
        _, _, term, trunc, info_ma = env.last()
        if term or trunc:
            env.step(None)
            continue
        action = scripted(agent, info_ma)
        env.step(action)
        if agent == "executor":
            obs, *_ = single.step(action)
            assert env.observe("executor")["text"] == obs["text"]
            assert env.observe("executor")["admissible_commands"] == obs["admissible_commands"]


def test_seeded_runs_are_identical():
    def policy(seed):
        rng = np.random.default_rng(seed)

        def act(agent, info):
            if agent == "planner":
                return str(rng.choice([oracle_plan(info), "<switch>KEEP</switch>", "<plan>Step 1: wander</plan>"]))
            return str(rng.choice([info["expert_action"] or "look", "look", "<replan>stuck</replan>", "xyzzy"]))

        return act

    runs = [play(planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_every=3), 13, policy(0))
            for _ in range(2)]
    assert len(runs[0]) > 10 and obs_equal(runs[0], runs[1])


def test_turn_taking_request_keep_and_interval():
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_every=2, replan_on_subgoal=False)
    env.reset(seed=1)
    assert env.agent_selection == "planner" and int(env.observe("planner")["trigger"]) == 0
    env.step("<think>short</think><plan>Step 1: find a thing. Step 2: put it away</plan>")
    assert env.agent_selection == "executor"
    assert env.observe("executor")["plan"] == ("find a thing", "put it away")
    assert env.infos["executor"]["acting_agent"] == "planner" and env.infos["executor"]["world_step"]

    env.step("look")  # 1st executor turn: no trigger yet
    assert env.agent_selection == "executor"
    hash_before = env.infos["executor"]["state_hash"]
    env.step("<replan>I cannot find it</replan>")  # only a request: no world step
    assert env.agent_selection == "planner"
    info = env.infos["planner"]
    assert not info["world_step"] and info["trigger"] == "request" and info["state_hash"] == hash_before
    obs = env.observe("planner")
    assert int(obs["trigger"]) == 1 and obs["request"] == "I cannot find it"

    env.step("<switch>KEEP</switch>")  # keeps the plan, valid
    assert env.agent_selection == "executor" and env.infos["executor"]["action_valid"]
    assert env.observe("executor")["plan"] == ("find a thing", "put it away")
    env.step("look")
    env.step("inventory")  # 2nd executor turn since the planner spoke: interval
    assert env.agent_selection == "planner" and int(env.observe("planner")["trigger"]) == 3


@pytest.mark.parametrize("on_subgoal", [True, False])
def test_subgoal_returns_control(on_subgoal):
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_on_subgoal=on_subgoal)
    env.reset(seed=2)
    env.step(oracle_plan(env.infos["planner"]))
    done_before = sum(env.infos["executor"]["subgoals_done"])
    while sum(env.infos["executor"]["subgoals_done"]) == done_before:
        assert env.agent_selection == "executor"
        env.step(env.infos["executor"]["expert_action"])
    assert env.agent_selection == ("planner" if on_subgoal else "executor")
    if on_subgoal:
        assert int(env.observe("planner")["trigger"]) == 2


def test_planner_cannot_act_and_executor_cannot_plan():
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_on_subgoal=False)
    env.reset(seed=4)
    target = env.observe("executor")["admissible_commands"][0]  # a "go to" command
    assert target.startswith("go to ")
    start = env.infos["planner"]["state_hash"]
    env.step(target)  # a bare command from the planner: invalid, the world does not change
    assert env.infos["executor"]["state_hash"] == start and not env.infos["executor"]["action_valid"]
    assert env.observe("executor")["plan"] == ()
    env.step(target)  # the executor goes there
    world_text = env.observe("executor")["text"]
    assert world_text.startswith("You arrive at")
    env.step("<replan/>")
    env.step(f"<plan>Step 1: look around</plan><action>{target}</action> <replan/>")  # no smuggled command
    assert env.observe("executor")["plan"] == ("look around",)
    assert env.observe("executor")["text"] == world_text, "the planner's OK. is not shown to the executor"
    env.step("<plan>Step 1: something else</plan> look")  # the executor's plan block is dropped, look runs
    assert env.observe("executor")["plan"] == ("look around",)
    assert env.infos["executor"]["command"] == "look"


def test_plan_bonus_telescopes_and_rewards_are_shared():
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", plan_reward_weight=2.0,
                                  reward_mode="progress", invalid_action_penalty=0.25)
    env.reset(seed=5)
    bonuses, plans = [], ["<plan>Step 1: dance</plan>", None, "<plan>Step 1: dance. Step 2: sing</plan>", None]
    for plan in plans:
        if plan is None:  # the planner writes the oracle plan
            plan = oracle_plan(env.infos["planner"])
        env.step(plan)
        info = env.infos["planner"]
        bonuses.append(info["plan_bonus"])
        assert info["rewards"]["planner"] == pytest.approx(info["team_reward"] + info["plan_bonus"])
        assert info["rewards"]["executor"] == info["team_reward"]
        env.step("<replan/>")
    assert sum(bonuses) == pytest.approx(2.0 * env.infos["planner"]["plan_score"])
    assert env.infos["planner"]["plan_score"] == pytest.approx(1.0)
    env.step("<plan>Step 1: x</plan>")
    env.step("fly away")  # invalid executor command: both agents pay the penalty
    info = env.infos["executor"]
    assert info["team_reward"] == pytest.approx(-0.25) and info["rewards"]["planner"] == pytest.approx(-0.25)


def test_world_steps_count_against_the_wrapped_limit():
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", max_episode_steps=5)
    env.reset(seed=0)
    actions = ["<plan>Step 1: wait</plan>", "look", "<replan/>", "<switch>KEEP</switch>", "look", "<replan/>"]
    for action in actions:  # world steps: plan, look, keep, look = 4; the replan-only turns are free
        env.step(action)
    assert not any(env.terminations.values()) and not any(env.truncations.values())
    env.step("nonsense")  # the planner's 5th world step truncates the episode for both agents
    assert all(env.truncations.values()) and not any(env.terminations.values())
    assert set(env.truncations) == {"planner", "executor"}


def test_parallel_view_is_turn_based():
    par = planner_executor_v0.parallel_env(env_id="PilotALFWorldSmall-v0")
    obs, infos = par.reset(seed=3)
    assert infos["executor"]["active_agent"] == "planner"
    obs, rewards, terms, truncs, infos = par.step({"planner": "<plan>Step 1: a</plan>", "executor": "go to x"})
    assert obs["executor"]["plan"] == ("a",) and infos["executor"]["active_agent"] == "executor"
    assert infos["executor"]["command"] == ""  # the executor's action was ignored on the planner's turn


def test_pickle_seed_and_reset_options():
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_every=4, reward_mode="milestone")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.replan_every == 4 and clone.unwrapped.inner.spec.id == "PilotALFWorldSmall-v0"
    env.reset(seed=9)
    clone.reset(seed=9)
    assert env.observe("executor")["text"] == clone.observe("executor")["text"]
    env.reset(options={"split": "valid_seen", "task_index": 3})
    assert env.infos["planner"]["task_id"] == "valid_seen/00003" and env.infos["planner"]["split"] == "valid_seen"
    with pytest.warns(UserWarning, match="ignoring unknown reset option"):
        env.reset(seed=1, options={"foo": 1})


@pytest.mark.parametrize(
    "kwargs",
    [{"env_id": "CartPole-v1"}, {"plan_mode": "oracle"}, {"replan_every": 0}, {"render_mode": "rgb_array"}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        planner_executor_v0.raw_env(**kwargs)


def test_cut_block_and_plan_action():
    assert cut_block("go to x<replan/>", "replan") == ("go to x ", True, "")
    assert cut_block("<REPLAN>lost</Replan>look", "replan") == (" look", True, "lost")
    assert cut_block("a <replan >b", "replan") == ("a <replan >b", False, "")
    assert cut_block("a<replan>open ended", "replan") == ("a ", True, "open ended")
    assert cut_block("x</replan>y<replan />z", "replan") == ("x y z", True, "")
    steps = ("go to the <action>cabinet</action>", "take the mug", "x" * 400)
    action = plan_action(steps)
    assert "<action>" not in action[6:-7]
    parsed = parse_plan(action[6:-7])
    assert parsed[1] == "take the mug" and len(parsed[2]) == 256


TAGGED = st.sampled_from([
    "<replan/>", "<replan>why</replan>", "<plan>Step 1: a. Step 2: b</plan>", "<switch>KEEP</switch>",
    "<switch>SWITCH</switch>", "<think>hm</think><action>look</action>", "<plan>", "</replan>", "go to",
    "Thought: x\nAction: inventory", "look", "help", "\x00\x1b", "<plan>Step 1: caf\u00e9 \u4e2d</plan>",
])
ANY_TEXT = st.one_of(st.text(max_size=60), TAGGED, st.lists(TAGGED, max_size=4).map("".join))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=25), seed=st.integers(0, 2**16), every=st.sampled_from([None, 1, 3]))
def test_any_text_is_safe_and_agents_agree(texts, seed, every):
    env = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0", replan_every=every, max_episode_steps=12)
    env.reset(seed=seed)
    for text in texts:
        if not env.agents:
            break
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
            continue
        env.step(text)
        assert len(set(env.terminations.values())) <= 1 and len(set(env.truncations.values())) <= 1
        for a in env.agents:
            assert env.observation_space(a).contains(env.observe(a)), a
            assert env.infos[a]["active_agent"] == env.agent_selection
            assert isinstance(env.rewards[a], float) and np.isfinite(env.rewards[a])
        assert env.infos[env.agents[0]]["rewards"] == {a: env.rewards[a] for a in env.agents}
