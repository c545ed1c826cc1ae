"""Snapshots restore exactly, on every registered env and the PettingZoo envs (get_state / set_state)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from envs_under_test import ALL_IDS, DETERMINISTIC_IDS, FAST_KWARGS, make, require_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pilot_envs
from pilot_envs import SnapshotError, checks, get_state, set_state
from pilot_envs.core.snapshot import decode, encode
from pilot_envs.multiagent import household_coop_v0, planner_executor_v0

# a choice: an admissible command (by index), the oracle's command (None), or any text at all
_choice = st.one_of(st.integers(0, 40), st.none(), st.none(), st.sampled_from(
    ["look", "inventory", "<think>where is it?</think>", "<plan>Step 1: find it</plan>", "garbage", "", "go to"]
), st.text(max_size=30))
_choices = st.lists(_choice, max_size=14)

_PAIRS: dict[str, tuple[gym.Env, gym.Env]] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_pairs():
    yield
    for pair in _PAIRS.values():
        for env in pair:
            env.close()
    _PAIRS.clear()


def _pair(env_id: str) -> tuple[gym.Env, gym.Env]:
    """Two envs per id for all examples (engines with a JVM start once)."""
    if env_id not in _PAIRS:
        _PAIRS[env_id] = (make(env_id), make(env_id))
    return _PAIRS[env_id]


@pytest.mark.parametrize("env_id", ALL_IDS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), before=_choices, after=_choices)
def test_a_restored_snapshot_continues_exactly(env_id, seed, before, after):
    env, fresh = _pair(env_id)
    checks.check_snapshot(env, fresh, seed=seed, before=before, after=after)


_CONTINUE_SCRIPT = """
import json, sys, gymnasium as gym, pilot_envs
from pilot_envs import checks
env_id, kwargs, path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
data = json.load(open(path))
env = gym.make(env_id, **kwargs)
print(json.dumps(checks.restore_then_continue(env, data["snapshot"], data["at"], data["after"])))
"""


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_a_snapshot_restores_in_another_process(env_id, tmp_path):
    require_engine(env_id)
    env = make(env_id)
    after = [None, 3, "look", None, 7, "<think>x</think>", None, None]
    snapshot, at, expected = checks.snapshot_then_continue(env, seed=21, before=[None, 1, None, 2], after=after)
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps({"snapshot": snapshot, "at": encode(at), "after": after}))
    script = _CONTINUE_SCRIPT.replace('data["at"]', 'decode(data["at"])').replace(
        "from pilot_envs import checks", "from pilot_envs import checks; from pilot_envs.core.snapshot import decode")
    out = subprocess.run([sys.executable, "-c", script, env_id, json.dumps(FAST_KWARGS.get(env_id, {})), str(path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    env.close()


def test_a_snapshot_is_plain_data_that_pickles_and_writes_as_json():
    env = make("PilotALFWorldSmall-v0")
    snapshot, _, _ = checks.snapshot_then_continue(env, seed=3, before=[None, None, 2], after=[])
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot
    assert "replay" not in json.dumps(snapshot) and "_commands" in snapshot["fields"]
    assert snapshot["fields"]["_commands"] is None  # the native engine copies its state: no history is kept


def test_time_limit_truncates_at_the_same_step_after_a_restore():
    env = gym.make("PilotALFWorldSmall-v0", max_episode_steps=6)
    env.reset(seed=0)
    for _ in range(4):
        env.step("look")
    snapshot = get_state(env)
    fresh = gym.make("PilotALFWorldSmall-v0", max_episode_steps=6)
    set_state(fresh, snapshot)
    assert fresh.step("look")[3] is False
    assert fresh.step("look")[3] is True


# ------------------------------------------------------------------------------------------------ refusals
def _small_snapshot() -> dict:
    env = make("PilotALFWorldSmall-v0")
    env.reset(seed=1)
    env.step("look")
    return get_state(env)


def test_a_snapshot_of_another_env_id_is_refused():
    env = gym.make("PilotALFWorld-v0")
    env.reset(seed=0)
    before = get_state(env)
    with pytest.raises(SnapshotError, match=r"PilotALFWorldSmall-v0.*cannot be restored into 'PilotALFWorld-v0'"):
        set_state(env, _small_snapshot())
    assert get_state(env) == before  # refused before anything changed


def test_a_snapshot_of_another_version_or_other_settings_is_refused():
    snapshot = _small_snapshot()
    old = {**snapshot, "env": {**snapshot["env"], "version": "0.0.1"}}
    with pytest.raises(SnapshotError, match=r"pilot-envs 0\.0\.1; this is " + pilot_envs.__version__):
        set_state(make("PilotALFWorldSmall-v0"), old)
    other = gym.make("PilotALFWorldSmall-v0", max_objects=5)
    with pytest.raises(SnapshotError, match=r"other settings \(differ: \['max_objects'\]\)"):
        set_state(other, snapshot)


def test_a_snapshot_through_other_wrappers_is_refused():
    bare = make("PilotALFWorldSmall-v0").unwrapped
    with pytest.raises(SnapshotError, match="other wrappers"):
        set_state(bare, _small_snapshot())


@pytest.mark.parametrize("damage", [
    lambda s: "not a snapshot",
    lambda s: {**s, "format": "pilot-envs-snapshot/0"},
    lambda s: {k: v for k, v in s.items() if k != "fields"},
    lambda s: {**s, "fields": {**s["fields"], "_stage": {"~nope": 1}}},
    lambda s: {**s, "fields": {**s["fields"], "_meta": {"~obj": {"cls": "Popen", "state": {"args": "touch x"}}}}},
    lambda s: {**s, "fields": {**s["fields"], "_np_random": {"~rng": {"bit_generator": "os.system", "state": {}}}}},
    lambda s: {**s, "fields": {**s["fields"], "_final": {"~nd": {"dtype": "<i8", "shape": [3], "data": "x"}}}},
    lambda s: {**s, "backend": {"world": 3, "num_goals": 2}},
    lambda s: {**s, "fields": {**s["fields"], "_final": {"~nd": {"dtype": "O", "shape": [1], "data": [1]}}}},
    lambda s: {**s, "fields": {**s["fields"], "_meta": {"~obj": {"cls": "TaskMeta", "state": {"task": "x"}}}}},
])
def test_a_damaged_or_foreign_snapshot_is_a_clear_error(damage):
    env = make("PilotALFWorldSmall-v0")
    with pytest.raises(SnapshotError):
        set_state(env, damage(_small_snapshot()))


def test_only_registered_classes_are_ever_built():
    with pytest.raises(SnapshotError, match="not a registered state class"):
        decode({"~obj": {"cls": "World.__init__", "state": {}}})
    with pytest.raises(SnapshotError, match="cannot write"):
        encode(object())


def test_get_state_before_reset_is_a_clear_error():
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        get_state(make("PilotALFWorldSmall-v0"))
    for name in _MULTI:
        with pytest.raises(gym.error.ResetNeeded, match="reset"):
            get_state(_MULTI[name]())


@pytest.mark.engine
def test_a_replayed_snapshot_that_does_not_reach_its_state_is_refused():
    require_engine("PilotTextWorld-v0")
    env = make("PilotTextWorld-v0")
    obs, info = env.reset(seed=0)
    env.step(info["expert_action"])
    snapshot = get_state(env)
    assert snapshot["fields"]["_commands"]  # TextWorld is restored by replaying the episode's commands
    tampered = {**snapshot, "fields": {**snapshot["fields"], "_commands": []}}
    with pytest.raises(SnapshotError, match="did not reach its state"):
        set_state(make("PilotTextWorld-v0"), tampered)
    loaded = snapshot["fields"]["_loaded_with"]["~tuple"]
    for rng in ({"bit_generator": "seed", "state": {}}, "not a state"):
        bad = {**snapshot, "fields": {**snapshot["fields"], "_loaded_with": {"~tuple": [rng, loaded[1]]}}}
        with pytest.raises(SnapshotError, match="damaged snapshot"):
            set_state(make("PilotTextWorld-v0"), bad)


# ------------------------------------------------------------------------------------------- PettingZoo envs
def _aec_play(env, choices, *, then_reset: bool) -> list:
    trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for choice in choices:
            if not env.agents:
                break
            obs, reward, term, trunc, info = env.last()
            trace.append(encode([env.agent_selection, obs, float(reward), term, trunc, info]))
            env.step(None if term or trunc else checks.choose_action(choice, obs, info))
        if then_reset:
            env.reset()
            trace.append(encode([env.agent_selection, *env.last()]))
    return trace


def _parallel_play(env, obs, choices, *, then_reset: bool) -> tuple[list, dict]:
    trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for choice in choices:
            if not env.agents:
                break
            actions = {a: checks.choose_action(choice, obs[a], {"expert_action": None}) for a in env.agents}
            out = env.step(actions)
            obs = out[0]
            trace.append(encode(list(out)))
        if then_reset:
            trace.append(encode(list(env.reset())))
    return trace, obs


_MULTI = {
    "planner_executor_v0": lambda: planner_executor_v0.env(env_id="PilotALFWorldSmall-v0"),
    "household_coop_v0": lambda: household_coop_v0.env(max_receptacles=6),
    "household_coop_v0 (parallel)": lambda: household_coop_v0.parallel_env(max_receptacles=6),
}


@pytest.mark.parametrize("name", list(_MULTI))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), before=_choices, after=_choices)
def test_pettingzoo_snapshots_continue_exactly(name, seed, before, after):
    env, fresh = _MULTI[name](), _MULTI[name]()
    if "parallel" in name:
        obs, _ = env.reset(seed=seed)
        _, obs = _parallel_play(env, obs, before, then_reset=False)
        snapshot = get_state(env)
        play = lambda e: _parallel_play(e, obs, after, then_reset=True)[0]  # noqa: E731
    else:
        env.reset(seed=seed)
        _aec_play(env, before, then_reset=False)
        snapshot = get_state(env)
        play = lambda e: _aec_play(e, after, then_reset=True)  # noqa: E731
    expected = play(env)
    set_state(env, snapshot)
    assert play(env) == expected
    set_state(fresh, json.loads(json.dumps(snapshot)))
    assert play(fresh) == expected


def test_a_pettingzoo_snapshot_of_another_env_is_refused():
    coop = household_coop_v0.env()
    coop.reset(seed=0)
    planner = planner_executor_v0.env(env_id="PilotALFWorldSmall-v0")
    planner.reset(seed=0)
    with pytest.raises(SnapshotError, match="cannot be restored"):
        set_state(planner, get_state(coop))
