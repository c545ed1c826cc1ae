"""Every registered env passes the same conformance checks (parametrised over the registry)."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from envs_under_test import ALL_IDS, DETERMINISTIC_IDS, make, require_engine
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilot_envs import checks
from pilot_envs.core.contract import INFO_KEYS, TextEnv, text_env
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
    keys = set(INFO_KEYS)
    assert isinstance(text_env(env), TextEnv) and text_env(env).domain and text_env(env).noop_action
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


# ------------------------------------------------------------------ the end of an episode
@contextlib.contextmanager
def backend_calls(backend):
    """Record calls to a backend's world methods (state_hash excluded: the checks read it)."""
    calls: list[str] = []
    names = ("load", "execute", "admissible_commands", "stage", "progress", "expert_plan", "help_text")
    for name in names:
        original = getattr(backend, name)
        setattr(backend, name, lambda *a, _n=name, _f=original, **k: calls.append(_n) or _f(*a, **k))
    try:
        yield calls
    finally:
        for name in names:
            delattr(backend, name)


@pytest.mark.parametrize("env_id", ALL_IDS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 3), after=st.lists(_any_text, min_size=1, max_size=4))
def test_stepping_a_terminated_episode_is_a_no_op(env_id, seed, after):
    """After termination: reward 0.0, still terminated, the same observation, the backend never called."""
    env = _shared(env_id)
    obs, info, elapsed = checks.play_until_terminated(env, seed=seed)
    with backend_calls(env.unwrapped.backend) as calls:
        checks.check_no_op_after_termination(env, obs, info, [*after, "look", "help"], elapsed=elapsed)
    assert calls == [], f"the backend was called after termination: {calls}"


# ------------------------------------------------------------------ reward settings are validated at make
REWARD_SETTINGS = ("success_reward", "invalid_action_penalty", "gamma", "milestone_bonus")
_NOT_A_NUMBER = st.one_of(
    st.sampled_from([None, True, False, np.True_, "1.0", "x", b"1", [1.0], (0.5,), {"a": 1}, 1 + 0j, object()]),
    st.text(max_size=4),
)
_NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("-inf")])


@st.composite
def _bad_reward_setting(draw) -> tuple[str, object]:
    name = draw(st.sampled_from(REWARD_SETTINGS))
    bad = [_NOT_FINITE, _NOT_A_NUMBER.filter(lambda v: not (name == "milestone_bonus" and v is None))]
    if name == "invalid_action_penalty":
        bad.append(st.floats(max_value=-1e-12, allow_infinity=False, allow_nan=False))
    if name == "gamma":
        bad.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda g: not 0.0 <= g <= 1.0))
    return name, draw(st.one_of(bad))


def expected_error(value: object) -> type[Exception]:
    """TypeError for anything but a real number (bools included), ValueError for a real number out of range."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    return ValueError if is_number else TypeError


@pytest.mark.parametrize("env_id", ALL_IDS)
@settings(max_examples=25, deadline=None)
@given(setting=_bad_reward_setting())
def test_bad_reward_settings_fail_clearly_at_make(env_id, setting):
    name, value = setting
    with pytest.raises(expected_error(value), match=name):
        make(env_id, **{name: value})


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_good_reward_settings_are_stored_as_floats(env_id):
    env = make(env_id, success_reward=10, invalid_action_penalty=np.float32(0.25), gamma=np.int64(1), milestone_bonus=0)
    cfg = env.unwrapped.reward_config
    assert (cfg.success_reward, cfg.invalid_action_penalty, cfg.gamma, cfg.milestone_bonus) == (10.0, 0.25, 1.0, 0.0)
    assert all(type(v) is float for v in (cfg.success_reward, cfg.invalid_action_penalty, cfg.gamma, cfg.milestone_bonus))
    env.close()
