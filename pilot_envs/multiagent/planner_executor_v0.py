"""``planner_executor_v0`` in PettingZoo's module style: ``env()``, ``parallel_env()``, ``raw_env``.

The card is :class:`pilot_envs.multiagent.planner_executor.PlannerExecutorEnv` (``raw_env.__doc__``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from pettingzoo.utils.conversions import turn_based_aec_to_parallel_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from pilot_envs.multiagent._common import check_actions, warn_step_after_end
from pilot_envs.multiagent.planner_executor import AGENTS, TRIGGERS, PlannerExecutorEnv

__all__ = ["env", "parallel_env", "raw_env", "AGENTS", "TRIGGERS", "TurnBasedParallel"]

raw_env = PlannerExecutorEnv


class TurnBasedParallel(turn_based_aec_to_parallel_wrapper):
    """PettingZoo's turn-based Parallel view with clear errors: ``step`` takes a dict agent -> action that holds
    the action of ``info["active_agent"]`` (``TypeError`` / ``ValueError`` otherwise), and a ``step`` after
    the end returns five empty dicts with a warning (PettingZoo's own returns four)."""

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        out = super().reset(seed=seed, options=options)
        self._warned_after_end = False
        return out

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not hasattr(self, "agents"):
            raise gym.error.ResetNeeded("Call reset() before step().")
        check_actions(actions, self.possible_agents)
        if not self.agents:
            if not self._warned_after_end:
                self._warned_after_end = True
                warn_step_after_end()
            return {}, {}, {}, {}, {}
        active = self.aec_env.agent_selection
        if active not in actions:
            raise ValueError(
                f"the turn-based parallel_env applies the action of the active agent {active!r} "
                f"(info[agent]['active_agent']); the actions dict has only {list(actions)}"
            )
        return super().step(actions)


def env(**kwargs: Any) -> OrderEnforcingWrapper:
    """The AEC env (``raw_env`` with PettingZoo's order checks). Arguments: see ``raw_env``."""
    return OrderEnforcingWrapper(raw_env(**kwargs))


def parallel_env(**kwargs: Any) -> TurnBasedParallel:
    """The turn-based Parallel view: each ``step`` applies only the action of ``info["active_agent"]``."""
    return TurnBasedParallel(raw_env(**kwargs))
