"""Property-based tests of the household dynamics (hypothesis drives random command sequences)."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pilot_envs  # noqa: F401
from pilot_envs.alfworld import tasks
from pilot_envs.alfworld.scene import TASK_TYPES
from pilot_envs.core.text_env import NOTHING_HAPPENS


def _world(env):
    return env.unwrapped.backend.world


def _snapshot(world):
    return (
        world.agent, world.holding, dict(world.location), {r: list(v) for r, v in world.contents.items()},
        set(world.opened), set(world.clean), set(world.hot), set(world.cool), set(world.toggled), set(world.sliced),
    )


def _check_invariants(world):
    # every object is in exactly one place: one receptacle's contents, or the hand
    places: dict[str, int] = {}
    for rec, objs in world.contents.items():
        for o in objs:
            places[o] = places.get(o, 0) + 1
            assert world.location[o] == rec
    if world.holding is not None:
        places[world.holding] = places.get(world.holding, 0) + 1
        assert world.location[world.holding] is None
    assert set(places) == set(world.obj_cls), "an object vanished or appeared"
    assert all(n == 1 for n in places.values()), places
    # at most one object in hand, and only held objects have no receptacle
    assert sum(1 for loc in world.location.values() if loc is None) == (world.holding is not None)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), picks=st.lists(st.integers(0, 10_000), min_size=5, max_size=40),
       noise=st.lists(st.sampled_from(["take mug 1 from cabinet 1", "open fridge 1", "go to nowhere 1", "close drawer 2",
                                       "move apple 1 to sinkbasin 1", "heat egg 1 with microwave 1", "use desklamp 1",
                                       "examine cabinet 3", "put cup 1 in/on shelf 1", "look", "inventory"]),
                      min_size=0, max_size=10))
def test_world_invariants_hold_under_any_commands(seed, picks, noise):
    env = gym.make("PilotALFWorld-v0")
    obs, info = env.reset(seed=seed)
    world = _world(env)
    noise = list(noise)
    for i, k in enumerate(picks):
        if noise and i % 3 == 2:
            action = noise.pop()
        else:
            cmds = obs["admissible_commands"]
            action = cmds[k % len(cmds)]
        before = _snapshot(world)
        before_hash = info["state_hash"]
        obs, r, term, trunc, info = env.step(action)
        _check_invariants(world)
        if obs["text"] == NOTHING_HAPPENS:
            assert _snapshot(world) == before, f"{action!r} did nothing but changed the state"
            assert info["state_hash"] == before_hash
            assert not info["action_valid"]
        if term or trunc:
            break


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=30))
def test_closed_receptacle_contents_are_never_shown(seed, picks):
    env = gym.make("PilotALFWorld-v0")
    obs, _ = env.reset(seed=seed)
    world = _world(env)
    for k in picks:
        cmds = obs["admissible_commands"]
        obs, *_ = env.step(cmds[k % len(cmds)])
        for rec in world.openable - world.opened:
            for o in world.contents[rec]:
                assert f"take {o} from {rec}" not in obs["admissible_commands"]
                if world.agent == rec:
                    # whole names only: "knife 1" is not shown by "butterknife 1" (examine of a held object)
                    assert not re.search(rf"\b{re.escape(o)}\b", obs["text"].split("closed")[-1])
        if world.agent in world.openable and world.agent not in world.opened:
            assert "In it, you see" not in obs["text"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_admissible_commands_all_do_something(seed):
    env = gym.make("PilotALFWorld-v0")
    obs, _ = env.reset(seed=seed)
    world = _world(env)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        cmds = obs["admissible_commands"]
        for cmd in cmds:
            probe = world.copy()
            assert probe.execute(cmd) is not None, f"admissible {cmd!r} did nothing"
            assert _snapshot(world) != _snapshot(probe) or cmd.split()[0] in ("examine", "look", "inventory", "help",
                                                                              "use", "slice", "heat", "cool", "clean")
        obs, _, term, trunc, _ = env.step(cmds[int(rng.integers(len(cmds)))])
        if term or trunc:
            break


def test_world_copy_is_independent():
    env = gym.make("PilotALFWorld-v0")
    _, info = env.reset(seed=1)
    world = _world(env)
    before = _snapshot(world)
    probe = world.copy()
    for cmd in info["expert_plan"]:
        assert probe.execute(cmd) is not None
    assert _snapshot(world) == before and _snapshot(probe) != before


def test_progress_never_drops_along_expert_trajectories():
    env = gym.make("PilotALFWorld-v0", reward_mode="progress")
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        last = float(obs["progress"][0])
        while True:
            obs, r, term, trunc, info = env.step(info["expert_action"])
            p = float(obs["progress"][0])
            assert 0.0 <= p <= 1.0
            assert p >= last, (seed, info["task_type"], info["command"])
            assert r >= 0
            last = p
            if term or trunc:
                break
        assert term and info["won"] and last == 1.0


@pytest.mark.parametrize("grammar", ["alfworld", "legacy"])
def test_expert_solves_every_task_of_every_split(grammar):
    """>= 2000 tasks across all types and splits, within the 50-step limit."""
    env = gym.make("PilotALFWorld-v0", grammar=grammar)
    solved, total = 0, 0
    jobs = [("valid_seen", i) for i in range(140)] + [("valid_unseen", i) for i in range(134)]
    jobs += [("train", i) for i in range(0, 3553, 2 if grammar == "alfworld" else 7)]
    by_type: dict[str, int] = {}
    for split, i in jobs:
        obs, info = env.reset(options={"split": split, "task_index": i})
        for _ in range(50):
            obs, r, term, trunc, info = env.step(info["expert_action"])
            if term or trunc:
                break
        total += 1
        solved += bool(info["won"])
        by_type[info["task_type"]] = by_type.get(info["task_type"], 0) + 1
    assert solved == total, f"expert solved {solved}/{total}"
    assert set(by_type) == set(TASK_TYPES)
    if grammar == "alfworld":
        assert total >= 2000


def test_small_scenes_respect_caps():
    env = gym.make("PilotALFWorldSmall-v0")
    for seed in range(50):
        env.reset(seed=seed)
        world = _world(env)
        assert len(world.receptacles) <= 6
        assert len(world.obj_cls) <= 8


def test_legacy_grammar_wording():
    env = gym.make("PilotALFWorld-v0", grammar="legacy")
    obs, info = env.reset(seed=1)
    cmds = info["expert_plan"]
    texts = []
    for c in cmds:
        obs, *_ , info = env.step(c)
        texts.append(obs["text"])
    assert any(t.startswith("You arrive at loc ") for t in texts)
    assert any(" in/on the " in t for t in texts)
    assert any(c.startswith("put ") and " in/on " in c for c in cmds)


def test_legacy_put_command_always_accepted():
    env = gym.make("PilotALFWorld-v0")
    obs, info = env.reset(seed=4)
    for c in info["expert_plan"]:
        if c.startswith("move "):
            obj, rec = c[5:].split(" to ")
            c = f"put {obj} in/on {rec}"
        obs, r, term, trunc, info = env.step(c)
        assert info["action_valid"], c
    assert info["won"]


def test_split_errors_are_clear():
    env = gym.make("PilotALFWorld-v0")
    with pytest.raises(ValueError, match="split"):
        env.reset(options={"split": "test", "task_index": 0})
    with pytest.raises((ValueError, IndexError), match=r"140|range"):
        env.reset(options={"split": "valid_seen", "task_index": 140})
    with pytest.raises(ValueError, match="task_index"):
        env.reset(options={"task_index": 3})


def test_split_sizes():
    assert tasks.SPLIT_SIZES == {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
