"""The oracle expert: the remaining commands of a shortest solution from any state.

Unlike ALFWorld's hand-coded expert, which explores receptacles until it sees the object, this one knows
where everything is. It plans on a small symbolic copy of the state (agent position, open receptacles,
hand), choosing at each choice point the option with the fewest steps (a ``go to`` costs 1 unless already
there; a closed receptacle costs 1 more to open), ties broken by the room's receptacle order.
"""

from __future__ import annotations

from pilot_envs.alfworld.catalog import CAN_CONTAIN
from pilot_envs.alfworld.milestones import PROCESS, best_place, won
from pilot_envs.alfworld.scene import TaskSpec
from pilot_envs.alfworld.world import World

__all__ = ["expert_plan"]


class _Planner:
    def __init__(self, world: World, task: TaskSpec):
        self.w, self.task = world, task
        self.at = world.agent
        self.opened = set(world.opened)
        self.holding = world.holding
        self.moved: dict[str, str] = {}  # objects placed by the plan so far -> receptacle
        self.cmds: list[str] = []
        self.order = world.order

    def loc(self, obj: str) -> str | None:
        return self.moved.get(obj, self.w.location[obj])

    def cost(self, rec: str) -> tuple[int, int]:
        closed = rec in self.w.openable and rec not in self.opened
        return (int(rec != self.at) + int(closed), self.order[rec])

    def go(self, rec: str, *, need_open: bool = True) -> None:
        if self.at != rec:
            self.cmds.append(f"go to {rec}")
            self.at = rec
        if need_open and rec in self.w.openable and rec not in self.opened:
            self.cmds.append(f"open {rec}")
            self.opened.add(rec)

    def drop(self) -> None:
        """Put down whatever is in hand, at the cheapest receptacle that can hold it."""
        obj = self.holding
        cls = self.w.obj_cls[obj]
        options = [r for r in self.w.receptacles if cls in CAN_CONTAIN.get(self.w.rec_cls[r], ())]
        rec = min(options, key=self.cost)
        self.place(obj, rec)

    def place(self, obj: str, rec: str) -> None:
        self.go(rec)
        self.cmds.append(f"put {obj} in/on {rec}" if self.w.legacy else f"move {obj} to {rec}")
        self.moved[obj] = rec
        self.holding = None

    def fetch(self, candidates: list[str]) -> str:
        if self.holding in candidates:
            return self.holding
        if self.holding is not None:
            self.drop()
        obj = min(candidates, key=lambda o: self.cost(self.loc(o)))
        rec = self.loc(obj)
        self.go(rec)
        self.cmds.append(f"take {obj} from {rec}")
        self.holding = obj
        self.moved.pop(obj, None)
        return obj

    def target_recs(self, cls: str) -> list[str]:
        return list(self.w.recs_by_class.get(cls, ()))


def expert_plan(world: World, task: TaskSpec) -> tuple[str, ...]:
    """Remaining commands from the current state (empty when the task is won). Cached per state."""
    return world.cached("expert", lambda: _plan(world, task))  # type: ignore[return-value]


def _plan(world: World, task: TaskSpec) -> tuple[str, ...]:
    if won(world, task):
        return ()
    p = _Planner(world, task)
    targets = list(world.by_class.get(task.obj_cls, ()))
    tt = task.task_type
    if tt == "look_at_obj_in_light":
        p.fetch(targets)
        lamps = world.by_class.get(task.lamp_cls, ())
        lamp = min(lamps, key=lambda o: (int(world.location[o] != p.at), p.order[world.location[o]]))
        p.go(world.location[lamp], need_open=False)
        p.cmds.append(f"use {lamp}")
        return tuple(p.cmds)
    if tt == "pick_two_obj_and_place":
        count, where = best_place(world, task)
        dest = where if count else None
        for _ in range(2 - count):
            free = [o for o in targets if dest is None or p.loc(o) != dest]
            obj = p.fetch(free)
            if dest is None:
                dest = min(p.target_recs(task.recep_cls), key=p.cost)
            p.place(obj, dest)
        return tuple(p.cmds)
    if tt in PROCESS:
        verb, appliance, attr = PROCESS[tt]
        done = getattr(world, attr)
        held = world.holding if world.holding in targets else None
        # prefer an already-processed object when one is in hand
        obj = held if held is not None else p.fetch(targets)
        if obj not in done:
            station = min(p.target_recs(appliance), key=lambda r: (int(r != p.at), p.order[r]))
            p.go(station, need_open=False)
            p.cmds.append(f"{verb} {obj} with {station}")
        p.place(obj, min(p.target_recs(task.recep_cls), key=p.cost))
        return tuple(p.cmds)
    obj = p.fetch(targets)
    p.place(obj, min(p.target_recs(task.recep_cls), key=p.cost))
    return tuple(p.cmds)
