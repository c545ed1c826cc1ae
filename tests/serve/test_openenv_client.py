"""openenv-core's own client (``GenericEnvClient``, which nobody here wrote) drives the server: the protocol is
OpenEnv's, and the observation carries the whole contract."""

from __future__ import annotations

import asyncio

import gymnasium as gym
import numpy as np
import requests
from openenv.core import GenericEnvClient

from pilot_envs.core.contract import INFO_KEYS

OBS_KEYS = {"text", "task", "plan", "subgoals_done", "progress", "admissible_commands", "terminated", "truncated",
            "info"}


def test_sync_generic_client_plays_an_episode(small_url):
    local = gym.make("PilotALFWorldSmall-v0")
    obs, info = local.reset(seed=11)
    with GenericEnvClient(base_url=small_url).sync() as client:
        result = client.reset(seed=11)
        assert result.observation.keys() >= OBS_KEYS and INFO_KEYS.keys() <= result.observation["info"].keys()
        assert result.observation["text"] == obs["text"] and result.reward is None and result.done is False
        for _ in range(50):
            action = info["expert_action"] or "look"
            result = client.step({"text": action})
            obs, reward, terminated, truncated, info = local.step(action)
            got = result.observation
            assert got["text"] == obs["text"] and got["task"] == obs["task"]
            assert got["admissible_commands"] == list(obs["admissible_commands"]) and got["plan"] == list(obs["plan"])
            assert np.array_equal(got["subgoals_done"], obs["subgoals_done"])
            assert np.float32(got["progress"][0]) == obs["progress"][0]
            assert result.reward == reward and result.done == (terminated or truncated)
            assert got["info"]["state_hash"] == info["state_hash"] and got["info"]["won"] == info["won"]
            if result.done:
                break
        assert result.done and result.observation["terminated"] and result.observation["info"]["won"]
        state = client.state()
        assert state["env_id"] == "PilotALFWorldSmall-v0" and state["step_count"] >= 1 and state["won"] is True


def test_async_client_options_and_errors(small_url):
    async def play() -> tuple[dict, str]:
        async with GenericEnvClient(base_url=small_url) as client:
            first = await client.reset(seed=2, options={"split": "valid_seen", "task_index": 3})
            try:
                await client.reset(options={"split": "nope"})
            except RuntimeError as e:  # the client's way of reporting a server error response
                return first.observation, str(e)
            return first.observation, ""

    observation, error = asyncio.run(play())
    assert observation["info"]["split"] == "valid_seen" and observation["info"]["task_id"].endswith("00003")
    assert "unknown split 'nope'" in error


def test_schema_health_metadata_and_env(small_url):
    assert requests.get(f"{small_url}/health", timeout=10).json()["status"] == "healthy"
    schema = requests.get(f"{small_url}/schema", timeout=10).json()
    assert schema["action"]["properties"]["text"]["type"] == "string"
    assert {"text", "task", "plan", "subgoals_done", "progress", "admissible_commands", "info"} <= set(
        schema["observation"]["properties"])
    env = requests.get(f"{small_url}/env", timeout=10).json()
    assert env["env_id"] == "PilotALFWorldSmall-v0" and env["max_episode_steps"] == 50
    assert env["observation_space"]["type"] == "Dict" and env["info_keys"] == list(INFO_KEYS)
    stateless = requests.post(f"{small_url}/reset", json={"seed": 5}, timeout=10).json()  # OpenEnv's HTTP reset
    assert stateless["observation"]["text"] == gym.make("PilotALFWorldSmall-v0").reset(seed=5)[0]["text"]
