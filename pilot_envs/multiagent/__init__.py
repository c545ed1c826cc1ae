"""PettingZoo envs over the household engine, in PettingZoo's module style.

* :mod:`pilot_envs.multiagent.planner_executor_v0` - a planner writes and revises the global plan, an
  executor acts (AEC native, turn-based Parallel view); wraps any single-agent id of this package.
* :mod:`pilot_envs.multiagent.household_coop_v0` - N embodied agents share one household and one
  two-object task (Parallel native, AEC by conversion).

Each module exposes ``env()`` (AEC), ``parallel_env()`` and ``raw_env``. Importing this package also
registers both with PettingZoo's registry (PettingZoo >= 1.26), as ``pilot_envs/planner_executor_v0`` and
``pilot_envs/household_coop_v0``::

    import pettingzoo, pilot_envs.multiagent
    env = pettingzoo.make("aec", "pilot_envs/planner_executor_v0", env_id="PilotALFWorldSmall-v0")
"""

from __future__ import annotations

import pettingzoo

from pilot_envs.multiagent import household_coop_v0, planner_executor_v0

__all__ = ["MULTIAGENT_ENVS", "household_coop_v0", "planner_executor_v0", "register_multiagent_envs"]

MULTIAGENT_ENVS: tuple[tuple[str, str], ...] = (
    ("pilot_envs/planner_executor_v0", "pilot_envs.multiagent.planner_executor_v0"),
    ("pilot_envs/household_coop_v0", "pilot_envs.multiagent.household_coop_v0"),
)
"""PettingZoo ids and the modules that implement them (entry points ``module:env`` / ``module:parallel_env``)."""


def register_multiagent_envs() -> None:
    """Register :data:`MULTIAGENT_ENVS` with PettingZoo's AEC and Parallel registries (idempotent; a no-op
    on PettingZoo versions without a registry)."""
    register = getattr(pettingzoo, "register", None)
    if register is None:
        return
    registries = {"aec": pettingzoo.aec_registry, "parallel": pettingzoo.parallel_registry}
    for env_id, module in MULTIAGENT_ENVS:
        key = pettingzoo.EnvSpec(id=env_id).id  # PettingZoo normalises "_v0" to "-v0"
        for kind, attr in (("aec", "env"), ("parallel", "parallel_env")):
            if key not in registries[kind]:
                register(kind, env_id, entry_point=f"{module}:{attr}")


register_multiagent_envs()
