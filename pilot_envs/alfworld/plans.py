"""Plans that say where to search, for the planning setting (docs/planning.md): the oracle's, a prior-based
planner's that never sees where things are, and the degraded plans that measure how much a plan matters.

Every plan is a tuple of step strings in the form the follower (:mod:`pilot_envs.alfworld.follower`) and the
env's plan scoring read: the task's milestones, each *find* step followed by the places to check in order,
``"find a mug: check cabinet 3, countertop 1"``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["DEGRADATIONS", "SearchPrior", "degrade", "find_object", "located_plan", "prior_plan", "search_places"]

_TAKE = re.compile(r"^take (.+) \d+ from (.+ \d+)$")
_GO = re.compile(r"^go to (.+ \d+)$")
_USE = re.compile(r"^use (.+) \d+$")
_FIND = re.compile(r"^find (?:a|an|the first|the second|the) (.+)$")


def _cls(name: str) -> str:
    """``"cabinet 3"`` -> ``"cabinet"``."""
    return name.rsplit(" ", 1)[0]


def search_places(expert_plan: Sequence[str]) -> list[tuple[str, str]]:
    """(object class, place) of each object the expert finds, in order: the place of each ``take`` and the place
    visited before each ``use`` (a lamp)."""
    out: list[tuple[str, str]] = []
    last_go = None
    for cmd in expert_plan:
        if m := _GO.match(cmd):
            last_go = m.group(1)
        elif m := _TAKE.match(cmd):
            out.append((m.group(1), m.group(2)))
        elif (m := _USE.match(cmd)) and last_go is not None:
            out.append((m.group(1), last_go))
    return out


def find_object(step: str) -> str | None:
    """The object class of a milestone ``"find the first mug"`` (None for other milestones)."""
    m = _FIND.match(step)
    return m.group(1) if m else None


def _with_places(subgoals: Sequence[str], places: Iterable[Sequence[str]]) -> tuple[str, ...]:
    it = iter(places)
    out = []
    for goal in subgoals:
        where = next(it, ()) if find_object(goal) else ()
        out.append(f"{goal}: check {', '.join(where)}" if where else goal)
    return tuple(out)


def located_plan(subgoals: Sequence[str], expert_plan: Sequence[str]) -> tuple[str, ...]:
    """The oracle's plan: each find step names the one place where the oracle expert finds that object. Read from
    a whole episode's expert commands (``info["expert_plan"]`` at reset)."""
    return _with_places(subgoals, ([place] for _, place in search_places(expert_plan)))


class SearchPrior:
    """Where objects of each class are found, counted over the expert's episodes of some tasks (train split):
    object class -> receptacle class -> count. A planner that knows only this (not the room's contents) checks
    the receptacle classes that most often hold the object first."""

    def __init__(self, counts: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        for obj, row in (counts or {}).items():
            self.counts[obj].update(row)

    def add(self, expert_plan: Sequence[str]) -> None:
        for obj, place in search_places(expert_plan):
            self.counts[obj][_cls(place)] += 1

    def order(self, obj: str, receptacles: Sequence[str]) -> list[str]:
        """The room's receptacles that ever held ``obj``, most frequent class first (room order within a class)."""
        row = self.counts.get(obj, Counter())
        ranked = sorted((r for r in receptacles if row[_cls(r)] > 0), key=lambda r: -row[_cls(r)])
        return ranked

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {obj: dict(row) for obj, row in sorted(self.counts.items())}


def prior_plan(subgoals: Sequence[str], receptacles: Sequence[str], prior: SearchPrior,
               max_places: int = 6) -> tuple[str, ...]:
    """The milestones, each find step listing up to ``max_places`` of the room's receptacles in the order of
    ``prior`` (a planner that has not seen the room's contents)."""
    places = [prior.order(obj, receptacles)[:max_places] for goal in subgoals if (obj := find_object(goal))]
    return _with_places(subgoals, places)


def _shuffled(plan: Sequence[str], rng: np.random.Generator, receptacles: Sequence[str]) -> tuple[str, ...]:
    if len(plan) < 2:
        return tuple(plan)
    while True:
        order = rng.permutation(len(plan))
        if (order != np.arange(len(plan))).any():
            return tuple(plan[i] for i in order)


def _step_missing(plan: Sequence[str], rng: np.random.Generator, receptacles: Sequence[str]) -> tuple[str, ...]:
    drop = int(rng.integers(len(plan))) if plan else 0
    return tuple(s for i, s in enumerate(plan) if i != drop)


def _wrong_places_first(plan: Sequence[str], rng: np.random.Generator, receptacles: Sequence[str],
                        k: int = 3) -> tuple[str, ...]:
    out = []
    for step in plan:
        head, sep, places = step.partition(": check ")
        if not sep:
            out.append(step)
            continue
        right = places.split(", ")
        wrong = [r for r in receptacles if r not in right]
        pick = [wrong[i] for i in rng.permutation(len(wrong))[:k]]
        out.append(f"{head}: check {', '.join([*pick, *right])}")
    return tuple(out)


DEGRADATIONS = {"shuffled": _shuffled, "step missing": _step_missing, "wrong places first": _wrong_places_first}
"""How a good plan is damaged: its steps in a random other order, one random step left out, each find step
checking three wrong receptacles (random ones of the room) before the right one."""


def degrade(plan: Sequence[str], how: str, receptacles: Sequence[str], seed: int) -> tuple[str, ...]:
    """``plan`` damaged as :data:`DEGRADATIONS` ``[how]`` says, reproducibly from ``seed``."""
    if how not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {how!r}; known: {sorted(DEGRADATIONS)}")
    return DEGRADATIONS[how](plan, np.random.default_rng(seed), receptacles)
