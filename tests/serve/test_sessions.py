"""The session limit holds (WebSocket and HTTP sessions together) and idle sessions are reaped."""

from __future__ import annotations

import time

import gymnasium as gym
import pytest
import requests
from serve_helpers import running

from pilot_envs.remote import RemoteEnv, RemoteEnvError


def test_session_limit_holds_and_frees():
    with running("PilotALFWorldSmall-v0", max_sessions=3, idle_timeout_s=None) as url:
        a, b = RemoteEnv(url), RemoteEnv(url)
        a.reset(seed=0), b.reset(seed=1)
        http = requests.post(f"{url}/sessions", timeout=10)
        assert http.status_code == 201
        full = requests.post(f"{url}/sessions", timeout=10)
        assert full.status_code == 429 and "at capacity: 3/3" in full.json()["detail"]
        c = RemoteEnv(url)
        with pytest.raises(RemoteEnvError, match="at capacity"):
            c.reset(seed=2)
        assert a.step("look")[0]["text"] and b.step("look")[0]["text"]  # the open ones are unaffected
        a.close()  # closing a WebSocket frees its slot ...
        deadline = time.monotonic() + 10
        while True:
            try:
                c.reset(seed=2)
                break
            except RemoteEnvError:
                assert time.monotonic() < deadline, "a closed session's slot was never freed"
                time.sleep(0.05)
        assert c.step("look")[0]["text"]
        sid = http.json()["session_id"]  # ... and so does deleting an HTTP session
        assert requests.delete(f"{url}/sessions/{sid}", timeout=10).status_code == 200
        assert requests.post(f"{url}/sessions", timeout=10).status_code == 201
        b.close(), c.close()


def test_idle_sessions_are_reaped():
    with running("PilotALFWorldSmall-v0", max_sessions=2, idle_timeout_s=0.5) as url:
        ws_env = gym.make("PilotRemote-v0", url=url)
        ws_env.reset(seed=0)
        sid = requests.post(f"{url}/sessions", timeout=10).json()["session_id"]
        assert requests.post(f"{url}/sessions/{sid}/reset", json={"seed": 1}, timeout=10).status_code == 200
        full = requests.post(f"{url}/sessions", timeout=10)
        assert full.status_code == 429 and "idle ones to be reaped (after 0.5 s)" in full.json()["detail"]
        deadline = time.monotonic() + 15  # OpenEnv's reaper looks every max(timeout / 4, 5 s)
        while requests.get(f"{url}/sessions/{sid}/state", timeout=10).status_code != 404:
            assert time.monotonic() < deadline, "the idle HTTP session was never reaped"
            time.sleep(0.2)
        gone = requests.post(f"{url}/sessions/{sid}/step", json={"action": {"text": "look"}}, timeout=10)
        assert gone.status_code == 404 and "reaped after 0.5 s idle" in gone.json()["detail"]
        with pytest.raises(RemoteEnvError, match="session is closed"):  # the WebSocket's env was closed too
            ws_env.step("look")
        obs, _ = ws_env.reset(seed=0)  # reset opens a new session
        assert obs["text"] == gym.make("PilotALFWorldSmall-v0").reset(seed=0)[0]["text"]
        ws_env.close()
