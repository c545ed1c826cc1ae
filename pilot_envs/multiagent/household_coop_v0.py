"""``household_coop_v0`` in PettingZoo's module style: ``env()``, ``parallel_env()``, ``raw_env()``.

The env is Parallel-native (:class:`pilot_envs.multiagent.household_coop.HouseholdCoopEnv`, the card);
the AEC views are PettingZoo's ``parallel_to_aec`` conversion of it, with clear errors (:class:`CoopAEC`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from pettingzoo.utils import AgentSelector
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from pilot_envs.core.snapshot import Snapshottable, register_state_class
from pilot_envs.multiagent._common import coerce_text, warn_step_after_end
from pilot_envs.multiagent.household_coop import HouseholdCoopEnv

__all__ = ["env", "parallel_env", "raw_env", "CoopAEC"]

parallel_env = HouseholdCoopEnv


register_state_class(AgentSelector)  # the conversion's turn order: plain data (the agents and whose turn it is)


class CoopAEC(Snapshottable, parallel_to_aec_wrapper):
    """PettingZoo's ``parallel_to_aec`` view with clear errors: a non-text action raises ``TypeError`` at the
    agent's own ``step`` (not at the end of the cycle), a done agent's action other than None raises
    ``ValueError``, and a ``step`` once every agent is done does nothing and warns once."""

    _snapshot_static = frozenset({"metadata", "render_mode", "possible_agents"})
    _snapshot_children = ("env",)

    def _snapshot_identity(self) -> dict[str, Any]:
        return {**self.env._snapshot_identity(), "id": f"{type(self).__module__}:{type(self).__qualname__}"}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().reset(seed=seed, options=options)
        self._warned_after_end = False

    def step(self, action: Any) -> None:
        if not hasattr(self, "agents"):
            raise gym.error.ResetNeeded("Call reset() before step().")
        if not self.agents:
            if not self._warned_after_end:
                self._warned_after_end = True
                warn_step_after_end()
            return
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise ValueError(f"{agent} is done: the only valid action of a done agent is None (call step(None))")
        else:
            coerce_text(action)
        super().step(action)


def raw_env(**kwargs: Any) -> CoopAEC:
    return CoopAEC(HouseholdCoopEnv(**kwargs))


raw_env.__doc__ = HouseholdCoopEnv.__doc__


def env(**kwargs: Any) -> OrderEnforcingWrapper:
    """The AEC env (``raw_env`` with PettingZoo's order checks). Arguments: see ``raw_env``."""
    return OrderEnforcingWrapper(raw_env(**kwargs))
