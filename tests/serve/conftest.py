"""Fixtures: a real uvicorn server per env id, started once per test process on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import pytest

pytest.importorskip("openenv", reason="pilot-envs serve needs the [serve] extra")

from serve_helpers import running


@pytest.fixture(scope="session")
def small_url():
    """PilotALFWorldSmall-v0 with room for the 64-session test and the others beside it."""
    with running("PilotALFWorldSmall-v0", max_sessions=96, idle_timeout_s=120) as url:
        yield url


@pytest.fixture(scope="session")
def full_url():
    """PilotALFWorld-v0 with non-default kwargs (the oracle plan in the observation, dense progress reward)."""
    with running("PilotALFWorld-v0", max_sessions=8, plan_mode="oracle", reward_mode="progress") as url:
        yield url
