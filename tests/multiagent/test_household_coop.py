"""household_coop_v0: PettingZoo conformance, single-agent text, resolution order, team play, invariants."""

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
from pilot_envs.alfworld import tasks
from pilot_envs.alfworld.catalog import OBJECT_CLASSES
from pilot_envs.checks import obs_equal
from pilot_envs.core.contract import INFO_KEYS
from pilot_envs.multiagent import household_coop_v0

PICK_TWO = ("pick_two_obj_and_place",)
VARIANTS = [{}, {"max_receptacles": 6, "max_objects": 8}, {"n_agents": 3, "plan_mode": "oracle"}]
SECTIONS = ("Description", "Agents", "Action Space", "Observation Space", "Rewards", "Episode End",
            "Information", "Arguments", "Version History")


def scene(seed: int, **caps):
    return tasks.procedural_scene(seed, task_types=PICK_TWO, **caps)


def world_of(env):
    return env.unwrapped.world


def expert_actions(env, infos) -> dict[str, str]:
    return {a: infos[a]["expert_action"] or "look" for a in env.agents}


def check_invariants(world) -> None:
    """No object in two hands; every object in exactly one place (one receptacle or one hand)."""
    held = [h for h in world.hands if h is not None]
    assert len(held) == len(set(held)), f"an object is held by two agents: {world.hands}"
    places: dict[str, int] = {}
    for rec, objs in world.contents.items():
        for o in objs:
            places[o] = places.get(o, 0) + 1
            assert world.location[o] == rec
    for o in held:
        places[o] = places.get(o, 0) + 1
        assert world.location[o] is None
    assert set(places) == set(world.obj_cls) and set(places.values()) == {1}, "objects were not conserved"


def test_card_and_registry():
    for doc in (household_coop_v0.raw_env.__doc__, household_coop_v0.parallel_env.__doc__):
        for section in SECTIONS:
            assert f"## {section}" in doc, section
    aec = pettingzoo.make("aec", "pilot_envs/household_coop_v0", n_agents=3)
    par = pettingzoo.make("parallel", "pilot_envs/household_coop_v0", n_agents=3)
    assert isinstance(aec, pettingzoo.AECEnv) and isinstance(par, pettingzoo.ParallelEnv)
    assert par.possible_agents == ["agent_0", "agent_1", "agent_2"] == aec.possible_agents


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_pettingzoo_api(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(household_coop_v0.env(**kwargs), num_cycles=25)
        parallel_api_test(household_coop_v0.parallel_env(**kwargs), num_cycles=25)


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_pettingzoo_seed(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_test(lambda: household_coop_v0.env(**kwargs), num_cycles=15)
        parallel_seed_test(lambda: household_coop_v0.parallel_env(**kwargs), num_cycles=15)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_agent_reads_exactly_like_the_single_agent_env(seed):
    sc = scene(seed)
    single = gym.make("PilotALFWorld-v0").unwrapped
    obs, info = single.reset(options={"scene": sc})
    coop = household_coop_v0.parallel_env(n_agents=1)
    cobs, cinfo = coop.reset(options={"scene": sc})
    rng = np.random.default_rng(seed)
    for t in range(40):
        a = cobs["agent_0"]
        for key in ("text", "task", "plan", "subgoals_done", "progress", "admissible_commands"):
            assert obs_equal(a[key], obs[key]), (t, key)
        assert set(INFO_KEYS) <= set(cinfo["agent_0"]), set(INFO_KEYS) - set(cinfo["agent_0"])
        for key in ("won", "progress", "subgoals", "subgoals_done", "action_valid", "command"):
            assert cinfo["agent_0"][key] == info[key], (t, key)
        if t % 3 == 2:  # mix in random admissible commands and junk
            cmds = obs["admissible_commands"]
            action = str(cmds[int(rng.integers(len(cmds)))]) if t % 2 else "take the moon"
        else:
            action = info["expert_action"]
        obs, r, term, trunc, info = single.step(action)
        cobs, crew, cterm, ctrunc, cinfo = coop.step({"agent_0": action})
        assert crew["agent_0"] == r and cterm["agent_0"] == term
        if term:
            break
    assert term, "the expert should finish within 40 steps"


def test_two_agents_each_keep_the_single_agent_text():
    sc = scene(3)
    single = gym.make("PilotALFWorld-v0").unwrapped
    obs, info = single.reset(options={"scene": sc})
    for action in ("help", "inventory"):
        obs, *_, info = single.step(action)
    looker = gym.make("PilotALFWorld-v0").unwrapped
    looker.reset(options={"scene": sc})
    coop = household_coop_v0.parallel_env(n_agents=2)
    cobs, _ = coop.reset(options={"scene": sc})
    for action in ("help", "inventory"):
        cobs, *_ = coop.step(dict.fromkeys(coop.agents, action))
        assert cobs["agent_0"]["text"] == cobs["agent_1"]["text"] == looker.step(action)[0]["text"]
    for _ in range(6):  # agent_0 plays the single-agent expert; agent_1 only looks around
        action = info["expert_action"]
        obs, *_, info = single.step(action)
        cobs, *_ = coop.step({"agent_0": action, "agent_1": "look"})
        assert cobs["agent_0"]["text"] == obs["text"]
        assert cobs["agent_1"]["text"] == looker.step("look")[0]["text"]


def _shared_spot(sc):
    """A receptacle that is always open and holds two pickupable objects, and those objects."""
    for rec in sc.receptacles:
        if rec.openable:
            continue
        objs = [o.name for o in sc.objects if o.location == rec.name and OBJECT_CLASSES[o.cls].pickupable]
        if len(objs) >= 2:
            return rec.name, objs
    return None


def _conflict_scene():
    for seed in range(100):
        sc = scene(seed)
        spot = _shared_spot(sc)
        if spot:
            return sc, spot
    raise AssertionError("no scene with a shared spot")


def test_same_object_goes_to_the_lower_index():
    sc, (rec, objs) = _conflict_scene()
    env = household_coop_v0.parallel_env(n_agents=3)
    env.reset(options={"scene": sc})
    env.step(dict.fromkeys(env.agents, f"go to {rec}"))
    take = f"take {objs[0]} from {rec}"
    obs, _, _, _, infos = env.step(dict.fromkeys(env.agents, take))
    assert obs["agent_0"]["text"] == f"You pick up the {objs[0]} from the {rec}."
    assert obs["agent_1"]["text"] == obs["agent_2"]["text"] == "Nothing happens."
    assert [infos[a]["action_valid"] for a in env.agents] == [True, False, False]
    assert world_of(env).hands == [objs[0], None, None]
    assert infos["agent_1"]["holding"] is None and infos["agent_0"]["holding"] == objs[0]
    assert f"agent_0 is at {rec} and carries a {objs[0]}." in obs["agent_1"]["teammates"]
    # each agent's commands follow its own hand; the taken object is out of everyone else's reach
    assert f"move {objs[0]} to {rec}" in obs["agent_0"]["admissible_commands"]
    assert f"take {objs[1]} from {rec}" not in obs["agent_0"]["admissible_commands"]
    assert f"take {objs[1]} from {rec}" in obs["agent_1"]["admissible_commands"]
    assert f"move {objs[0]} to {rec}" not in obs["agent_1"]["admissible_commands"]
    assert f"take {objs[0]} from {rec}" not in obs["agent_1"]["admissible_commands"]
    assert env.step({"agent_1": f"examine {objs[0]}"})[0]["agent_1"]["text"] == "Nothing happens."
    check_invariants(world_of(env))


def test_resolution_is_sequential_in_index_order():
    sc, (rec, objs) = _conflict_scene()
    env = household_coop_v0.parallel_env(n_agents=2)
    env.reset(options={"scene": sc})
    env.step(dict.fromkeys(env.agents, f"go to {rec}"))
    env.step({"agent_0": f"take {objs[0]} from {rec}", "agent_1": "look"})
    # agent_0 puts the object down and agent_1 picks it up in the same step
    obs, *_ = env.step({"agent_0": f"move {objs[0]} to {rec}", "agent_1": f"take {objs[0]} from {rec}"})
    assert obs["agent_1"]["text"] == f"You pick up the {objs[0]} from the {rec}."
    assert world_of(env).hands == [None, objs[0]]
    # ... but not the other way round: agent_1 moves it, agent_0 acted first and found nothing
    obs, *_ = env.step({"agent_0": f"take {objs[0]} from {rec}", "agent_1": f"move {objs[0]} to {rec}"})
    assert obs["agent_0"]["text"] == "Nothing happens."
    assert world_of(env).hands == [None, None]
    check_invariants(world_of(env))


def test_team_oracle_splits_the_work():
    team_steps = single_steps = 0
    both_contributed = 0
    for seed in range(8):
        sc = scene(seed)
        single = gym.make("PilotALFWorld-v0")
        obs, info = single.reset(options={"scene": sc})
        term = False
        while not term:
            obs, _, term, _, info = single.step(info["expert_action"])
            single_steps += 1
        env = household_coop_v0.parallel_env(n_agents=2, reward_mode="progress")
        obs, infos = env.reset(options={"scene": sc})
        total = dict.fromkeys(env.agents, 0.0)
        while env.agents:
            obs, rewards, terms, truncs, infos = env.step(expert_actions(env, infos))
            team_steps += 1
            assert len(set(rewards.values())) == 1, "one team reward"
            for a, r in rewards.items():
                total[a] += r
            check_invariants(world_of(env))
        assert all(terms.values()) and not any(truncs.values()) and infos["agent_0"]["won"]
        assert total["agent_0"] == pytest.approx(2.0)  # success + the telescoped progress potential
        contributions = [infos[a]["total_contribution"] for a in ("agent_0", "agent_1")]
        assert sum(contributions) == pytest.approx(1.0)
        both_contributed += min(contributions) > 0
    assert team_steps < 0.7 * single_steps, (team_steps, single_steps)
    assert both_contributed >= 6


def test_any_agent_can_make_team_progress():
    env = household_coop_v0.parallel_env(n_agents=2, reward_mode="milestone")
    obs, infos = env.reset(seed=6)
    while infos["agent_1"]["progress"] == 0:  # agent_1 works alone, agent_0 idles
        obs, rewards, *_, infos = env.step({"agent_0": "inventory", "agent_1": infos["agent_1"]["expert_action"]})
    # the first milestone is agent_1's own "find" (its view counts for the team), not a placed object
    assert infos["agent_1"]["progress"] == infos["agent_1"]["contribution"] == pytest.approx(1 / 8)
    assert infos["agent_0"]["total_contribution"] == 0
    assert rewards["agent_0"] == rewards["agent_1"] > 0
    assert infos["agent_0"]["subgoals_done"][0] and obs["agent_0"]["subgoals_done"][0] == 1


def test_rewards_penalties_and_truncation():
    env = household_coop_v0.parallel_env(n_agents=2, invalid_action_penalty=0.1, max_cycles=3)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"agent_0": "fly", "agent_1": "look"})
    assert rewards == {"agent_0": pytest.approx(-0.1), "agent_1": pytest.approx(-0.1)}
    assert infos["agent_1"]["team_reward"] == pytest.approx(-0.1)
    _, rewards, terms, truncs, _ = env.step({"agent_0": "fly", "agent_1": ""})  # both did nothing
    assert rewards["agent_1"] == pytest.approx(-0.2) and not any(truncs.values())
    _, _, terms, truncs, _ = env.step({"agent_0": "look", "agent_1": "<think>wait</think>"})
    assert all(truncs.values()) and not any(terms.values()) and env.agents == []


def test_plan_modes():
    env = household_coop_v0.parallel_env(n_agents=2, plan_mode="agent")
    obs, infos = env.reset(seed=4)
    plan = "<plan>" + " ".join(f"Step {i + 1}: {s}." for i, s in enumerate(infos["agent_0"]["subgoals"])) + "</plan>"
    obs, _, _, _, infos = env.step({"agent_0": plan, "agent_1": "<plan>Step 1: \u4e2d" + "x" * 400 + "</plan>"})
    assert len(obs["agent_0"]["plan"]) == 8 and infos["agent_0"]["plan_score"] == pytest.approx(1.0)
    assert obs["agent_0"]["text"] == "OK." and env.observation_space("agent_1").contains(obs["agent_1"])
    assert infos["agent_1"]["plan_score"] == 0.0
    oracle = household_coop_v0.parallel_env(plan_mode="oracle")
    obs, infos = oracle.reset(seed=4)
    assert obs["agent_1"]["plan"] == tuple(s[:1].upper() + s[1:] for s in infos["agent_1"]["subgoals"])


def test_aec_view_matches_parallel():
    par = household_coop_v0.parallel_env(n_agents=2)
    aec = household_coop_v0.env(n_agents=2)
    pobs, pinfos = par.reset(seed=12)
    aec.reset(seed=12)
    for _ in range(60):
        if not par.agents:
            break
        actions = expert_actions(par, pinfos)
        pobs, prew, pterm, ptrunc, pinfos = par.step(actions)
        for agent in aec.agent_iter(len(actions)):
            aec.step(actions[agent])
        for a in par.agents or actions:
            assert obs_equal(aec.observe(a), pobs[a]) and aec.infos[a] == pinfos[a]
            assert aec.rewards[a] == prew[a] and aec.terminations[a] == pterm[a]
    assert all(pterm.values())


def test_pickle_options_and_arguments():
    env = household_coop_v0.parallel_env(n_agents=3, max_cycles=7, max_receptacles=6)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.possible_agents == env.possible_agents and clone.max_cycles == 7
    a, _ = env.reset(seed=5)
    b, _ = clone.reset(seed=5)
    assert obs_equal(a, b)
    _, infos = env.reset(options={"split": "valid_unseen", "task_index": 2})
    assert infos["agent_0"]["split"] == "valid_unseen" and infos["agent_0"]["task_type"] == PICK_TWO[0]
    with pytest.raises(ValueError, match="pick_two"):
        env.reset(options={"scene": tasks.procedural_scene(0, task_types=("pick_and_place_simple",))})
    with pytest.warns(UserWarning, match="ignoring unknown reset option"):
        env.reset(options={"options": 1})
    for bad in ({"n_agents": 0}, {"n_agents": 9}, {"max_cycles": 0}, {"plan_mode": "x"}, {"grammar": "x"}):
        with pytest.raises(ValueError):
            household_coop_v0.parallel_env(**bad)


def test_legacy_grammar_team_oracle_solves():
    env = household_coop_v0.parallel_env(n_agents=2, grammar="legacy", max_receptacles=6, max_objects=8)
    obs, infos = env.reset(seed=21)
    while env.agents:
        obs, _, terms, _, infos = env.step(expert_actions(env, infos))
    assert all(terms.values())


ACTION = st.one_of(
    st.integers(0, 10_000),  # an index into the agent's admissible commands
    st.text(max_size=40),
    st.sampled_from(["<plan>Step 1: a</plan>", "<action>look</action>", "help", "take", "move  to ", "\x7f"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**16),
    steps=st.lists(st.lists(ACTION, min_size=3, max_size=3), min_size=1, max_size=20),
    expert_every=st.sampled_from([0, 2]),
)
def test_random_play_keeps_the_invariants(n, seed, steps, expert_every):
    env = household_coop_v0.parallel_env(n_agents=n, max_cycles=15, max_receptacles=6, max_objects=8)
    obs, infos = env.reset(seed=seed)
    check_invariants(world_of(env))
    for t, choices in enumerate(steps):
        if not env.agents:
            break
        actions = {}
        for i, agent in enumerate(env.agents):
            choice = choices[i % len(choices)]
            if expert_every and t % expert_every == 0:
                actions[agent] = infos[agent]["expert_action"] or "look"
            elif isinstance(choice, int):
                cmds = obs[agent]["admissible_commands"]
                actions[agent] = cmds[choice % len(cmds)]
            else:
                actions[agent] = choice
        progress_before = infos["agent_0"]["progress"]
        obs, rewards, terms, truncs, infos = env.step(actions)
        check_invariants(world_of(env))
        assert set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos) == set(actions)
        assert len(set(terms.values())) == 1 and len(set(truncs.values())) == 1
        assert len(set(rewards.values())) == 1 and len({i["state_hash"] for i in infos.values()}) == 1
        assert sum(i["contribution"] for i in infos.values()) == pytest.approx(
            infos["agent_0"]["progress"] - progress_before)
        for agent in obs:
            assert env.observation_space(agent).contains(obs[agent]), agent
            assert infos[agent]["holding"] == world_of(env).hands[int(agent.split("_")[1])]
        assert (env.agents == []) == (terms["agent_0"] or truncs["agent_0"])
