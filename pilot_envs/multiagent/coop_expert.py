"""The team oracle of ``household_coop``: remaining commands for every agent of a two-object task.

Split of the work, recomputed from the state at every step (so it needs no memory):

* the destination is the target receptacle already holding a target object, else the first target
  receptacle in room order, open ones first;
* every agent holding a target object carries it to the destination;
* the objects still missing are assigned to the other agents, one object per agent, minimising the
  longest and then the total fetch cost (a ``go to`` costs 1 unless already there, a closed receptacle 1
  more, a full hand 2 more), ties to lower agent indices and earlier receptacles;
* an agent with nothing to do gets an empty plan.

An agent holding something else puts it down first at the cheapest receptacle that can hold it.
"""

from __future__ import annotations

import itertools

from pilot_envs.alfworld.catalog import CAN_CONTAIN
from pilot_envs.alfworld.milestones import best_place
from pilot_envs.alfworld.scene import TaskSpec
from pilot_envs.multiagent.coop_world import CoopWorld

__all__ = ["COOP_TASK_TYPE", "team_plans"]

COOP_TASK_TYPE = "pick_two_obj_and_place"


class _Route:
    """Commands of one agent, planned on a small symbolic copy of its position, hand and open receptacles."""

    def __init__(self, world: CoopWorld, i: int):
        self.w = world
        self.at, self.holding = world.positions[i], world.hands[i]
        self.opened = set(world.opened)
        self.cmds: list[str] = []

    def cost(self, rec: str) -> tuple[int, int]:
        closed = rec in self.w.openable and rec not in self.opened
        return int(rec != self.at) + int(closed), self.w.order[rec]

    def go(self, rec: str) -> None:
        if self.at != rec:
            self.cmds.append(f"go to {rec}")
            self.at = rec
        if rec in self.w.openable and rec not in self.opened:
            self.cmds.append(f"open {rec}")
            self.opened.add(rec)

    def take(self, obj: str, rec: str) -> None:
        self.go(rec)
        self.cmds.append(f"take {obj} from {rec}")
        self.holding = obj

    def place(self, obj: str, rec: str) -> None:
        self.go(rec)
        self.cmds.append(f"put {obj} in/on {rec}" if self.w.legacy else f"move {obj} to {rec}")
        self.holding = None

    def drop(self) -> None:
        obj = self.holding
        cls = self.w.obj_cls[obj]
        options = [r for r in self.w.receptacles if cls in CAN_CONTAIN.get(self.w.rec_cls[r], ())]
        self.place(obj, min(options, key=self.cost))


def _fetch_cost(world: CoopWorld, i: int, obj: str) -> int:
    rec = world.location[obj]
    closed = rec in world.openable and rec not in world.opened
    return int(world.positions[i] != rec) + int(closed) + (2 if world.hands[i] is not None else 0)


def _assign(world: CoopWorld, agents: list[int], objects: list[str], need: int) -> list[tuple[int, str]]:
    m = min(need, len(agents), len(objects))
    if m <= 0:
        return []
    best_key, best = None, []
    for who in itertools.combinations(agents, m):
        for what in itertools.permutations(objects, m):
            costs = [_fetch_cost(world, i, o) for i, o in zip(who, what, strict=True)]
            key = (max(costs), sum(costs), who, tuple(world.order[world.location[o]] for o in what), what)
            if best_key is None or key < best_key:
                best_key, best = key, list(zip(who, what, strict=True))
    return best


def team_plans(world: CoopWorld, task: TaskSpec) -> tuple[tuple[str, ...], ...]:
    """Per agent, the remaining commands of the team oracle (all empty once the task is won). Cached."""
    if task.task_type != COOP_TASK_TYPE:
        raise ValueError(f"the team oracle plays {COOP_TASK_TYPE!r} tasks, not {task.task_type!r}")
    return world.team_cached("expert", lambda: _plans(world, task))  # type: ignore[return-value]


def _plans(world: CoopWorld, task: TaskSpec) -> tuple[tuple[str, ...], ...]:
    n = world.n_agents
    count, where = best_place(world, task)
    if count >= 2:
        return ((),) * n
    targets = world.by_class.get(task.obj_cls, ())
    dest = where if count else min(
        world.recs_by_class[task.recep_cls],
        key=lambda r: (int(r in world.openable and r not in world.opened), world.order[r]),
    )
    plans: list[tuple[str, ...]] = [()] * n
    holders = [i for i in range(n) if world.hands[i] in targets]
    for i in holders:
        route = _Route(world, i)
        route.place(world.hands[i], dest)
        plans[i] = tuple(route.cmds)
    free = [o for o in targets if world.location[o] is not None and world.location[o] != dest]
    others = [i for i in range(n) if i not in holders]
    for i, obj in _assign(world, others, free, 2 - count - len(holders)):
        route = _Route(world, i)
        if route.holding is not None:
            route.drop()
        route.take(obj, world.location[obj])
        route.place(obj, dest)
        plans[i] = tuple(route.cmds)
    return tuple(plans)
