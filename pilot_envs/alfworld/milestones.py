"""Subgoals of the six task types and the stage (milestones reached) of a world state.

Each task type is an ordered list of milestones (ALFWorld's expert is a machine over exactly these):
find obj -> take obj -> [go to appliance -> heat|cool|clean obj] -> go to recep -> put obj; two-object
tasks repeat the block; light tasks: find obj -> take obj -> find lamp -> use lamp.

:func:`stage` returns how many milestones the current state has reached: the furthest milestone whose
predicate holds, e.g. "holding a clean mug at a cabinet" is stage 5 of 6 of a clean task. A later
milestone implies the earlier ones, so the stage is a function of state (progress = stage / K).
"""

from __future__ import annotations

from pilot_envs.alfworld.scene import TaskSpec
from pilot_envs.alfworld.world import World
from pilot_envs.core.task import Subgoal

__all__ = ["subgoals", "stage", "won", "PROCESS"]

# task type -> (verb, appliance class, world attribute holding the processed objects)
PROCESS: dict[str, tuple[str, str, str]] = {
    "pick_clean_then_place_in_recep": ("clean", "SinkBasin", "clean"),
    "pick_heat_then_place_in_recep": ("heat", "Microwave", "hot"),
    "pick_cool_then_place_in_recep": ("cool", "Fridge", "cool"),
}


def subgoals(task: TaskSpec) -> tuple[Subgoal, ...]:
    """The ordered milestones of a task, as :class:`Subgoal` data."""
    o = task.obj_cls.lower()
    if task.task_type == "look_at_obj_in_light":
        lamp = (task.lamp_cls or "").lower()
        return (
            Subgoal(f"find a {o}", "find", (o,)),
            Subgoal(f"take the {o}", "take", (o,)),
            Subgoal(f"find the {lamp}", "find", (lamp,)),
            Subgoal(f"use the {lamp}", "use", (lamp,)),
        )
    r = (task.recep_cls or "").lower()
    place = (
        Subgoal(f"go to the {r}", "go", (r,)),
        Subgoal(f"put the {o} in the {r}", "put", (o, r)),
    )
    if task.task_type == "pick_two_obj_and_place":
        return (
            Subgoal(f"find the first {o}", "find", (o,)),
            Subgoal(f"take the first {o}", "take", (o,)),
            Subgoal(f"go to the {r}", "go", (r,)),
            Subgoal(f"put the first {o} in the {r}", "put", (o, r)),
            Subgoal(f"find the second {o}", "find", (o,)),
            Subgoal(f"take the second {o}", "take", (o,)),
            Subgoal(f"go to the {r}", "go", (r,)),
            Subgoal(f"put the second {o} in the {r}", "put", (o, r)),
        )
    fetch = (Subgoal(f"find a {o}", "find", (o,)), Subgoal(f"take the {o}", "take", (o,)))
    if task.task_type in PROCESS:
        verb, appliance, _ = PROCESS[task.task_type]
        a = appliance.lower()
        process = (Subgoal(f"go to the {a}", "go", (a,)), Subgoal(f"{verb} the {o} with the {a}", verb, (o,)))
        return (*fetch, *process, *place)
    return (*fetch, *place)


def _targets(world: World, task: TaskSpec) -> tuple[str, ...]:
    return world.by_class.get(task.obj_cls, ())


def _visible_target_here(world: World, targets: tuple[str, ...], exclude: str | None = None) -> bool:
    here = world.agent
    if here is None or here == exclude or not world.visible(here):
        return False
    return any(world.location[o] == here for o in targets)


def best_place(world: World, task: TaskSpec) -> tuple[int, str | None]:
    """(most target objects in one target receptacle, that receptacle)."""
    best, where = 0, None
    for o in _targets(world, task):
        loc = world.location[o]
        if loc is not None and world.rec_cls[loc] == task.recep_cls:
            n = sum(1 for p in world.contents[loc] if world.obj_cls[p] == task.obj_cls)
            if n > best:
                best, where = n, loc
    return best, where


def lamps_here(world: World, task: TaskSpec) -> list[str]:
    here = world.agent
    if here is None:
        return []
    return [o for o in world.contents[here] if world.obj_cls[o] == task.lamp_cls]


def stage(world: World, task: TaskSpec) -> int:
    """Milestones reached by the current state (cached per world version)."""
    return world.cached("stage", lambda: _stage(world, task))  # type: ignore[return-value]


def _stage(world: World, task: TaskSpec) -> int:
    targets = _targets(world, task)
    held = world.holding if world.holding in targets else None
    here_cls = world.rec_cls.get(world.agent) if world.agent else None
    tt = task.task_type
    if tt == "look_at_obj_in_light":
        if held:
            lamps = lamps_here(world, task)
            if lamps:
                return 4 if any(lamp in world.toggled for lamp in lamps) else 3
            return 2
        return 1 if _visible_target_here(world, targets) else 0
    if tt == "pick_two_obj_and_place":
        count, where = best_place(world, task)
        if count >= 2:
            return 8
        base = 4 * count
        if held:
            at_place = world.agent == where if count else here_cls == task.recep_cls
            return base + (3 if at_place else 2)
        return base + (1 if _visible_target_here(world, targets, exclude=where if count else None) else 0)
    if tt in PROCESS:
        _, appliance, attr = PROCESS[tt]
        done = getattr(world, attr)
        if any(o in done and world.location[o] and world.rec_cls[world.location[o]] == task.recep_cls for o in targets):
            return 6
        if held:
            if held in done:
                return 5 if here_cls == task.recep_cls else 4
            return 3 if here_cls == appliance else 2
        return 1 if _visible_target_here(world, targets) else 0
    # pick_and_place_simple
    if any(world.location[o] and world.rec_cls[world.location[o]] == task.recep_cls for o in targets):
        return 4
    if held:
        return 3 if here_cls == task.recep_cls else 2
    return 1 if _visible_target_here(world, targets) else 0


_NUM_GOALS = {"look_at_obj_in_light": 4, "pick_two_obj_and_place": 8, "pick_and_place_simple": 4}


def won(world: World, task: TaskSpec) -> bool:
    return stage(world, task) == _NUM_GOALS.get(task.task_type, 6)
