"""``household_coop_v0`` in PettingZoo's module style: ``env()``, ``parallel_env()``, ``raw_env()``.

The env is Parallel-native (:class:`pilot_envs.multiagent.household_coop.HouseholdCoopEnv`, the card);
the AEC views are PettingZoo's ``parallel_to_aec`` conversion of it.
"""

from __future__ import annotations

from typing import Any

from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from pilot_envs.multiagent.household_coop import HouseholdCoopEnv

__all__ = ["env", "parallel_env", "raw_env"]

parallel_env = HouseholdCoopEnv


def raw_env(**kwargs: Any) -> parallel_to_aec_wrapper:
    return parallel_to_aec_wrapper(HouseholdCoopEnv(**kwargs))


raw_env.__doc__ = HouseholdCoopEnv.__doc__


def env(**kwargs: Any) -> OrderEnforcingWrapper:
    """The AEC env (``raw_env`` with PettingZoo's order checks). Arguments: see ``raw_env``."""
    return OrderEnforcingWrapper(raw_env(**kwargs))
