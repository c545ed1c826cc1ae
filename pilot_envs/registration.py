"""One declarative table of every env id this package registers (string entry points: importing this
module imports no engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvEntry", "ENVS", "register_envs", "env_ids"]

_ALF = "pilot_envs.alfworld.env:PilotALFWorldEnv"


@dataclass(frozen=True)
class EnvEntry:
    id: str
    entry_point: str
    max_episode_steps: int = 50
    kwargs: dict[str, Any] = field(default_factory=dict)
    nondeterministic: bool = False
    requires: str | None = None  # the optional extra whose package this env needs


_TASK_IDS = {
    "PickAndPlace": "pick_and_place_simple",
    "LookInLight": "look_at_obj_in_light",
    "PickClean": "pick_clean_then_place_in_recep",
    "PickHeat": "pick_heat_then_place_in_recep",
    "PickCool": "pick_cool_then_place_in_recep",
    "PickTwo": "pick_two_obj_and_place",
}

ENVS: tuple[EnvEntry, ...] = (
    EnvEntry("PilotALFWorld-v0", _ALF),
    EnvEntry("PilotALFWorldSmall-v0", _ALF, kwargs={"max_receptacles": 6, "max_objects": 8}),
    *(EnvEntry(f"PilotALFWorld-{name}-v0", _ALF, kwargs={"task_types": (tt,)}) for name, tt in _TASK_IDS.items()),
    EnvEntry(
        "PilotScienceWorld-v0",
        "pilot_envs.scienceworld.env:PilotScienceWorldEnv",
        max_episode_steps=100,
        nondeterministic=True,
        requires="scienceworld",
    ),
    EnvEntry("PilotTextWorld-v0", "pilot_envs.textworld.env:PilotTextWorldEnv", requires="textworld"),
)


def register_envs() -> None:
    """Register every entry of :data:`ENVS` with Gymnasium (idempotent)."""
    for e in ENVS:
        if e.id in gym.registry:
            continue
        gym.register(
            id=e.id,
            entry_point=e.entry_point,
            max_episode_steps=e.max_episode_steps,
            kwargs=dict(e.kwargs),
            nondeterministic=e.nondeterministic,
            disable_env_checker=False,
        )
    if "PilotRemote-v0" not in gym.registry:  # a client of `pilot-envs serve`, not an env of its own: not in ENVS
        gym.register(id="PilotRemote-v0", entry_point="pilot_envs.remote:RemoteEnv", max_episode_steps=None)
    if "PilotPlanner-v0" not in gym.registry:  # the planner's seat over another id (RLTR's env): not in ENVS either
        gym.register(id="PilotPlanner-v0", entry_point="pilot_envs.multiagent.planner_env:PlannerEnv",
                     max_episode_steps=None)


def env_ids() -> tuple[str, ...]:
    return tuple(e.id for e in ENVS)
