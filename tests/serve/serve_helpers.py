"""Running a real server for the tests: uvicorn on 127.0.0.1 with an ephemeral port, in a thread of the test process
(:func:`running`) or in a process of its own that a test can kill (:func:`spawn`); and an in-process reference
to compare against (:func:`transcript`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import uvicorn
from gymnasium.utils.env_checker import data_equivalence

import pilot_envs  # noqa: F401 - registers the ids
from pilot_envs.serve.app import bind, create_app


@contextlib.contextmanager
def running(env_id: str, **kwargs: Any) -> Iterator[str]:
    """``create_app(env_id, **kwargs)`` served by uvicorn in a background thread; yields its base URL."""
    app = create_app(env_id, **kwargs)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def spawn(env_id: str, *args: str) -> tuple[subprocess.Popen, str]:
    """``python -m pilot_envs.serve env_id --port 0 ...`` in its own process; returns it and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "pilot_envs.serve", env_id, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
    url = line.split(" on ", 1)[1].split(" ", 1)[0]
    return proc, url


Step = tuple[Any, ...]


def transcript(env: gym.Env, *, seed: int, actions: Callable[[int, dict, dict], str], steps: int,
               options: dict | None = None) -> list[Step]:
    """Everything observable along an episode (resetting with ``seed`` and again without a seed when it ends)."""
    obs, info = env.reset(seed=seed, options=options)
    return [("reset", obs, info), *play_on(env, obs, info, actions, steps)]


def play_on(env: gym.Env, obs: dict, info: dict, actions: Callable[[int, dict, dict], str], steps: int) -> list[Step]:
    """``steps`` steps from ``(obs, info)``, each recorded as (action, obs, reward, terminated, truncated, info); an
    ended episode is reset without a seed (recorded as ("reset", obs, info))."""
    out: list[Step] = []
    for t in range(steps):
        action = actions(t, obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((action, obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            out.append(("reset", obs, info))
    return out


def assert_same(served: list[Step], local: list[Step]) -> None:
    """Equal step by step: values and types (numpy dtypes, tuples), so a served episode is the in-process one."""
    assert len(served) == len(local)
    for t, (a, b) in enumerate(zip(served, local, strict=True)):
        assert len(a) == len(b), t
        for x, y in zip(a, b, strict=True):
            assert type(x) is type(y) or (isinstance(x, float) and isinstance(y, float)), (t, x, y)
            assert data_equivalence(x, y, exact=True), f"step {t} differs:\nserved {x!r:.600}\nlocal  {y!r:.600}"


def mixed_policy(seed: int) -> Callable[[int, dict, dict], str]:
    """Mostly the oracle's command, sometimes a random admissible one or free text (so episodes end both ways)."""
    rng = np.random.default_rng(seed)
    junk = ["look", "<think>hmm</think><action>inventory</action>", "Thought: go\nAction: examine cabinet 1",
            "fly to the moon", "", "<plan>Step 1: find it Step 2: take it</plan>"]

    def act(t: int, obs: dict, info: dict) -> str:
        u = rng.random()
        cmds = obs["admissible_commands"]
        if u < 0.6 and info["expert_action"]:
            return info["expert_action"]
        if u < 0.85 and cmds:
            return cmds[int(rng.integers(len(cmds)))]
        return junk[int(rng.integers(len(junk)))]

    return act
