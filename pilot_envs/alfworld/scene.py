"""Static description of one household task: the room, its receptacles, its objects and the goal.

A :class:`Scene` is pure data (frozen dataclasses of strings and tuples): it is what the task
generator produces, what :mod:`pilot_envs.alfworld.world` turns into a mutable world, and what
:mod:`pilot_envs.alfworld.export` writes as a real ALFWorld game.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilot_envs.core.snapshot import register_state_class

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)


@register_state_class
@dataclass(frozen=True)
class ReceptacleSpec:
    """One receptacle instance, e.g. ``ReceptacleSpec("cabinet 1", "Cabinet", True, False)``."""

    name: str  # "<class word> <n>", the name players type
    cls: str  # ALFRED class, e.g. "Cabinet", "CounterTop", "SinkBasin"
    openable: bool
    opened: bool = False  # initial state (only meaningful when openable)


@register_state_class
@dataclass(frozen=True)
class ObjectSpec:
    """One object instance and where it starts, e.g. ``ObjectSpec("mug 1", "Mug", "cabinet 1")``."""

    name: str  # "<class word> <n>"
    cls: str  # ALFRED class, e.g. "Mug", "DeskLamp"
    location: str  # name of the receptacle it starts in/on


@register_state_class
@dataclass(frozen=True)
class TaskSpec:
    """The goal: one of :data:`TASK_TYPES` with its parameters and the goal sentence."""

    task_type: str
    obj_cls: str  # the class of the object to move / examine
    recep_cls: str | None  # target receptacle class (None for look_at_obj_in_light)
    lamp_cls: str | None  # "DeskLamp" or "FloorLamp" for look_at_obj_in_light, else None
    goal: str  # e.g. "put a clean mug in cabinet" (no trailing period)


@register_state_class
@dataclass(frozen=True)
class Scene:
    """A whole task. Receptacles are listed in the order the room description uses."""

    task_id: str
    room_type: str  # "kitchen" | "livingroom" | "bedroom" | "bathroom"
    layout: str  # floor plan the room is modelled on, e.g. "FloorPlan12"
    receptacles: tuple[ReceptacleSpec, ...]
    objects: tuple[ObjectSpec, ...]
    task: TaskSpec
