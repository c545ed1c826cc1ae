"""Served equals in-process: seeded episodes through the server (RemoteEnv over the WebSocket, and plain HTTP
sessions) give every observation, reward, flag and info of the in-process env, with the same types."""

from __future__ import annotations

import importlib.util
import string

import gymnasium as gym
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import assert_same, mixed_policy, running, transcript

from pilot_envs.core.contract import INFO_KEYS
from pilot_envs.remote import RemoteEnv


def _remote(url: str) -> RemoteEnv:
    return gym.make("PilotRemote-v0", url=url)


@pytest.mark.parametrize("seed", [0, 7])
def test_small_episodes_equal(small_url, seed):
    remote, local = _remote(small_url), gym.make("PilotALFWorldSmall-v0")
    served = transcript(remote, seed=seed, actions=mixed_policy(seed), steps=120)
    assert_same(served, transcript(local, seed=seed, actions=mixed_policy(seed), steps=120))
    assert sum(step[0] == "reset" for step in served) >= 2  # episodes ended and restarted through the server
    assert INFO_KEYS.keys() <= served[-1][-1].keys()
    remote.close()


def test_full_env_with_kwargs_and_split_equal(full_url):
    """A server started with kwargs, a reset with options (split, task_index): same as gym.make with them."""
    remote = _remote(full_url)
    local = gym.make("PilotALFWorld-v0", plan_mode="oracle", reward_mode="progress")
    options = {"split": "valid_unseen", "task_index": 5}
    served = transcript(remote, seed=3, options=options, actions=mixed_policy(3), steps=60)
    assert_same(served, transcript(local, seed=3, options=options, actions=mixed_policy(3), steps=60))
    assert served[0][2]["split"] == "valid_unseen" and served[0][1]["plan"]  # the oracle plan travelled
    assert any(step[2] not in (0.0, 1.0) for step in served if step[0] != "reset")  # dense rewards travelled
    remote.close()


@pytest.mark.skipif(importlib.util.find_spec("textworld") is None, reason="needs the textworld extra")
def test_textworld_episode_equal():
    with running("PilotTextWorld-v0", max_sessions=2) as url:
        remote = _remote(url)
        served = transcript(remote, seed=1, actions=mixed_policy(1), steps=30)
        remote.close()
    assert_same(served, transcript(gym.make("PilotTextWorld-v0"), seed=1, actions=mixed_policy(1), steps=30))


def test_http_session_equals_local(small_url):
    """The stateful HTTP sessions give the same JSON the in-process env would (after JSON conversion)."""
    sid = requests.post(f"{small_url}/sessions", timeout=10).json()["session_id"]
    local = gym.make("PilotALFWorldSmall-v0")
    r = requests.post(f"{small_url}/sessions/{sid}/reset", json={"seed": 4}, timeout=10).json()
    obs, info = local.reset(seed=4)
    assert r["observation"]["text"] == obs["text"] and r["observation"]["info"]["task_id"] == info["task_id"]
    for _ in range(10):
        action = info["expert_action"] or "look"
        r = requests.post(f"{small_url}/sessions/{sid}/step", json={"action": {"text": action}}, timeout=10).json()
        obs, reward, terminated, truncated, info = local.step(action)
        got = r["observation"]
        assert got["text"] == obs["text"] and got["admissible_commands"] == list(obs["admissible_commands"])
        assert got["subgoals_done"] == obs["subgoals_done"].tolist() and got["progress"] == obs["progress"].tolist()
        assert (r["reward"], r["done"], got["terminated"]) == (reward, terminated or truncated, terminated)
        assert got["info"]["state_hash"] == info["state_hash"] and got["info"]["expert_plan"] == list(info["expert_plan"])
        if r["done"]:
            break
    assert requests.delete(f"{small_url}/sessions/{sid}", timeout=10).json()["closed"] is True


_TEXT = st.text(alphabet=string.printable + "é’—\u2603", max_size=300)
_ACTIONS = st.lists(st.one_of(_TEXT, st.sampled_from(["look", "inventory", "go to countertop 1", "open fridge 1",
                                                      "<action>go to drawer 1</action>", "think: where?"])),
                    min_size=1, max_size=15)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), actions=_ACTIONS)
def test_random_text_actions_equal(small_url, seed, actions):
    """Any text, as an LLM might write it, has the same effect served as in-process."""
    remote, local = _remote(small_url), gym.make("PilotALFWorldSmall-v0")
    policy = lambda t, obs, info: actions[t % len(actions)]  # noqa: E731
    served = transcript(remote, seed=seed, actions=policy, steps=len(actions))
    assert_same(served, transcript(local, seed=seed, actions=policy, steps=len(actions)))
    remote.close()
