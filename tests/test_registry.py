"""Every registered env passes the same conformance checks (parametrised over the registry)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import ALL_IDS, DETERMINISTIC_IDS, make, require_engine
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilot_envs import checks
from pilot_envs.core.text_env import NOTHING_HAPPENS


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_check_env(env_id):
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_observations_in_space_and_info_keys(env_id):
    env = make(env_id)
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    keys = {"won", "progress", "subgoals", "subgoals_done", "expert_action", "expert_plan", "action_valid",
            "command", "plan_score", "plan_step", "state_hash", "task_type", "task_id", "split"}
    for _ in range(20):
        assert env.observation_space.contains(obs), obs
        assert keys <= set(info), keys - set(info)
        assert 0.0 <= obs["progress"][0] <= 1.0
        obs, r, term, trunc, info = env.step(checks.random_admissible_policy(obs, info, rng))
        assert isinstance(r, float)
        if term or trunc:
            obs, info = env.reset()
    env.close()


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_seeded_determinism_across_instances(env_id):
    checks.check_determinism(lambda: make(env_id), seed=11, steps=40)


_DIGEST_SCRIPT = (
    "import gymnasium as gym, pilot_envs, sys; from pilot_envs import checks; "
    "print(checks.rollout_digest(gym.make(sys.argv[1]), seed=5, steps=25))"
)


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_seeded_determinism_across_processes(env_id):
    require_engine(env_id)
    here = checks.rollout_digest(make(env_id), seed=5, steps=25)
    out = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT, env_id], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == here


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_pickle_mid_episode(env_id):
    checks.check_pickle(lambda: make(env_id), seed=2, steps=6)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_pickle_fresh_env(env_id):
    env = make(env_id)
    clone = pickle.loads(pickle.dumps(env))
    assert checks.obs_equal(env.reset(seed=1), clone.reset(seed=1))


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_vector_sync_equals_async(env_id):
    require_engine(env_id)
    checks.check_vector_sync_async(env_id, num_envs=2, seed=4, steps=6)


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_reward_mode_never_changes_dynamics(env_id):
    require_engine(env_id)
    checks.check_reward_modes_same_dynamics(env_id, seed=7, steps=30)


@pytest.mark.parametrize("env_id", DETERMINISTIC_IDS)
def test_progress_rewards_telescope(env_id):
    env = make(env_id, reward_mode="progress", success_reward=10.0)
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, info = env.reset(seed=episode)
        p0, total, won = float(obs["progress"][0]), 0.0, False
        for _ in range(60):
            policy = checks.random_admissible_policy if rng.random() < 0.5 else None
            action = policy(obs, info, rng) if policy else (info["expert_action"] or "look")
            obs, r, term, trunc, info = env.step(action)
            total += r
            won = won or info["won"]
            if term or trunc:
                break
        assert total == pytest.approx(10.0 * won + float(obs["progress"][0]) - p0, abs=1e-9)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_step_before_reset_and_bad_types_are_clear(env_id):
    env = make(env_id).unwrapped
    with pytest.raises(gym.error.ResetNeeded):
        env.step("look")
    env.reset(seed=0)
    for bad in (3, None, 2.5, ["look"], {"a": 1}):
        with pytest.raises(TypeError, match="actions are text"):
            env.step(bad)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"no_such_option": 1})


_any_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=80),
    st.sampled_from(["", " ", "\x00", "<action>", "</action><action>", "<plan></plan>", "Action:", ">", "think:",
                     "<switch>MAYBE</switch>", "go to", "take  from ", "put in/on", "help", "x" * 20000]),
)


_SHARED: dict[str, gym.Env] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_shared_envs():
    yield
    for env in _SHARED.values():
        env.close()
    _SHARED.clear()


def _shared(env_id: str) -> gym.Env:
    """One env per id across hypothesis examples (engines with a JVM start once, not 60 times)."""
    if env_id not in _SHARED:
        _SHARED[env_id] = make(env_id)
    return _SHARED[env_id]


@pytest.mark.parametrize("env_id", ALL_IDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_any_text)
def test_any_string_is_a_safe_action(env_id, text):
    env = _shared(env_id)
    obs, info = env.reset(seed=0)
    before = info["state_hash"]
    obs, r, term, trunc, info = env.step(text)
    assert env.observation_space.contains(obs)
    assert isinstance(obs["text"], str)
    if not info["action_valid"]:
        assert obs["text"] == NOTHING_HAPPENS or obs["text"]
        assert info["state_hash"] == before


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_declared_plan_always_fits_the_observation_space(env_id):
    env = make(env_id, plan_mode="agent")
    env.reset(seed=0)
    steps = " ".join(f"Step {i}: {'中' * 300} go to {'x' * 400}" for i in range(100))
    obs, *_ , info = env.step(f"<plan>{steps}</plan>")
    assert env.observation_space.contains(obs)
    assert 0 < len(obs["plan"]) <= 64 and all(len(s) <= 256 and "中" not in s for s in obs["plan"])
