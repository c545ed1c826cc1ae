"""64 sessions at once, stepping for a bounded time: none lost, none crossed, each transcript equal to in-process."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
from serve_helpers import assert_same, mixed_policy

SESSIONS = 64
SECONDS = 4.0  # stepping time; each session stops at this deadline or after MAX_STEPS
MAX_STEPS = 60


def _play(url: str, i: int, barrier: threading.Barrier, deadline: list[float]) -> list[tuple]:
    env = gym.make("PilotRemote-v0", url=url)
    policy = mixed_policy(i)
    obs, info = env.reset(seed=1000 + i)
    steps = [("reset", obs, info)]
    barrier.wait(timeout=60)  # all sessions are open before anyone steps
    while len(steps) <= MAX_STEPS and time.monotonic() < deadline[0]:
        action = policy(len(steps), obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((action, obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            steps.append(("reset", obs, info))
    env.close()
    return steps


def _replay(i: int, served: list[tuple]) -> list[tuple]:
    env = gym.make("PilotALFWorldSmall-v0")
    obs, info = env.reset(seed=1000 + i)
    out = [("reset", obs, info)]
    for step in served[1:]:
        if step[0] == "reset":
            obs, info = env.reset()
            out.append(("reset", obs, info))
        else:
            obs, reward, terminated, truncated, info = env.step(step[0])
            out.append((step[0], obs, reward, terminated, truncated, info))
    return out


def test_64_concurrent_sessions_match_in_process(small_url):
    barrier = threading.Barrier(SESSIONS, action=lambda: deadline.__setitem__(0, time.monotonic() + SECONDS))
    deadline = [float("inf")]
    with ThreadPoolExecutor(SESSIONS) as pool:
        futures = [pool.submit(_play, small_url, i, barrier, deadline) for i in range(SESSIONS)]
        transcripts = [f.result(timeout=120) for f in futures]
    assert all(len(t) > 5 for t in transcripts), [len(t) for t in transcripts]  # every session made progress
    task_ids = {t[0][2]["task_id"] for t in transcripts}
    assert len(task_ids) > SESSIONS // 2  # seeds differ, so sessions differ: a crossed session would show
    for i, served in enumerate(transcripts):
        assert_same(served, _replay(i, served))
