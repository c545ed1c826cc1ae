"""``planner_executor_v0`` in PettingZoo's module style: ``env()``, ``parallel_env()``, ``raw_env``.

The card is :class:`pilot_envs.multiagent.planner_executor.PlannerExecutorEnv` (``raw_env.__doc__``).
"""

from __future__ import annotations

from typing import Any

from pettingzoo.utils.conversions import turn_based_aec_to_parallel
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from pilot_envs.multiagent.planner_executor import AGENTS, TRIGGERS, PlannerExecutorEnv

__all__ = ["env", "parallel_env", "raw_env", "AGENTS", "TRIGGERS"]

raw_env = PlannerExecutorEnv


def env(**kwargs: Any) -> OrderEnforcingWrapper:
    """The AEC env (``raw_env`` with PettingZoo's order checks). Arguments: see ``raw_env``."""
    return OrderEnforcingWrapper(raw_env(**kwargs))


def parallel_env(**kwargs: Any) -> Any:
    """The turn-based Parallel view: each ``step`` applies only the action of ``info["active_agent"]``."""
    return turn_based_aec_to_parallel(raw_env(**kwargs))
