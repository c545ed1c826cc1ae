"""The registry of env ids under test, with engines that are not installed skipped clearly.

A module with its own name (not ``conftest``): test files import it, and a ``conftest`` module name is shared by
every folder's conftest.py (tests/serve has one), so ``from conftest import ...`` could get another folder's."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import pytest

import pilot_envs
from pilot_envs.registration import ENVS

ENTRIES = {e.id: e for e in ENVS}
ALL_IDS = [e.id for e in ENVS]
DETERMINISTIC_IDS = [e.id for e in ENVS if not e.nondeterministic]

# Fast variants used by the heavier checks (full-size native envs are checked too, just not everywhere).
FAST_KWARGS: dict[str, dict] = {
    "PilotScienceWorld-v0": {
        "task": "lifespan-longest-lived",
        "deterministic": True,
        "jvm_options": ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"),
    },
}


def require_engine(env_id: str) -> None:
    entry = ENTRIES[env_id]
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        pytest.skip(f"{env_id} needs the optional package {entry.requires!r} (pip install pilot-envs[{entry.requires}])")


def make(env_id: str, **kwargs) -> gym.Env:
    require_engine(env_id)
    return gym.make(env_id, **{**FAST_KWARGS.get(env_id, {}), **kwargs})


assert pilot_envs.env_ids()
