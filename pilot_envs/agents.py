"""Baseline agents for ``pilot-envs eval`` and ``play``: each maps (observation, info) to an action string.

Agents are registered by name in :data:`AGENTS` (``pilot-envs eval --agent NAME``); add your own with
:func:`register_agent`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

__all__ = ["Agent", "AGENTS", "register_agent", "make_agent", "ExpertAgent", "RandomAgent"]


class Agent(Protocol):
    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str: ...


class ExpertAgent:
    """Plays the env's oracle: ``info["expert_action"]``."""

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        return info.get("expert_action") or "look"


class RandomAgent:
    """A uniformly random admissible command."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        cmds = obs["admissible_commands"]
        return str(cmds[int(self.rng.integers(len(cmds)))]) if len(cmds) else "look"


AGENTS: dict[str, Callable[..., Agent]] = {"expert": ExpertAgent, "random": RandomAgent}


def register_agent(name: str, factory: Callable[..., Agent]) -> None:
    AGENTS[name] = factory


def make_agent(name: str, **kwargs: Any) -> Agent:
    if name not in AGENTS:
        raise KeyError(f"unknown agent {name!r}; known: {sorted(AGENTS)}")
    return AGENTS[name](**kwargs)
