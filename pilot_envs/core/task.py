"""Tasks as data: subgoals (ordered milestones), progress, and scoring of a declared plan.

A task's subgoals are ordered milestones, each a predicate over the world state that the env's
backend evaluates (the backend knows its own state; a :class:`Subgoal` is plain, picklable data).
``progress`` is the length of the satisfied prefix divided by the number of subgoals. Backends report
the *stage* reached, i.e. the index of the furthest milestone whose predicate holds, and every milestone
before it counts as satisfied: a later milestone implies the earlier ones (a clean mug in the cabinet
implies the mug was found, taken and cleaned). Progress is therefore a function of state, and a valid
shaping potential.

Plan scoring (``info["plan_score"]``) is environment-grounded: how many of the true subgoals the
declared plan's steps cover, in the right order, with a mild penalty for padding the plan with steps
that match nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pilot_envs.core.snapshot import register_state_class

__all__ = ["Subgoal", "completeness", "flags_from_stage", "match_steps", "oracle_plan_text", "plan_coverage", "plan_score",
           "plan_step"]

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "the", "to", "of", "in", "on", "at", "with", "from", "into", "onto", "and", "then", "it", "them", "some", "your", "you", "up", "for", "by"])

SYNONYMS: dict[str, frozenset[str]] = {
    "find": frozenset({"find", "locate", "search", "look", "seek", "go", "check", "explore"}),
    "take": frozenset({"take", "pick", "grab", "get", "collect", "retrieve", "obtain", "hold"}),
    "go": frozenset({"go", "walk", "move", "navigate", "head", "return", "bring", "carry", "travel"}),
    "put": frozenset({"put", "place", "move", "drop", "leave", "set", "store", "deposit", "bring"}),
    "clean": frozenset({"clean", "wash", "rinse", "cleanse", "sinkbasin", "sink"}),
    "heat": frozenset({"heat", "warm", "microwave", "cook", "hot"}),
    "cool": frozenset({"cool", "chill", "fridge", "refrigerate", "cold", "freeze"}),
    "use": frozenset({"use", "turn", "switch", "toggle", "light", "examine", "look"}),
}


def words(text: str) -> tuple[str, ...]:
    """Lower-case content words of ``text`` (stop words removed)."""
    return tuple(w for w in _WORD.findall(text.lower()) if w not in _STOP)


@register_state_class
@dataclass(frozen=True)
class Subgoal:
    """One milestone. ``text`` is what a person reads ("clean the mug with the sinkbasin").

    ``verb`` and ``args`` say how a plan step is recognised as this milestone: the step must contain a
    synonym of ``verb`` (see :data:`SYNONYMS`; any verb when empty) and every word of every arg
    (e.g. ``("mug",)``). ``key`` is the backend's own description of the predicate.
    """

    text: str
    verb: str = ""
    args: tuple[str, ...] = ()
    key: tuple = field(default=(), compare=True)

    def matches(self, step: str) -> bool:
        return _matches(self.verb, self.args, self.text, step)


@lru_cache(maxsize=65536)
def _matches(verb: str, args: tuple[str, ...], text: str, step: str) -> bool:
    step_words = set(words(step))
    if not step_words:
        return False
    if verb or args:
        verbs = SYNONYMS.get(verb, frozenset({verb})) if verb else None
        if verbs is not None and not (verbs & step_words):
            return False
        return all(set(words(a)) <= step_words for a in args)
    goal_words = set(words(text))
    return bool(goal_words) and len(goal_words & step_words) / len(goal_words) >= 0.6


def flags_from_stage(stage: int, num_subgoals: int) -> tuple[bool, ...]:
    """``stage`` milestones reached -> one flag per subgoal (the satisfied prefix)."""
    stage = max(0, min(stage, num_subgoals))
    return (True,) * stage + (False,) * (num_subgoals - stage)


def match_steps(plan: Sequence[str], subgoals: Sequence[Subgoal]) -> list[int | None]:
    """For each plan step, the index of the first subgoal it matches that is not matched before it.

    Matching is greedy in plan order and prefers the earliest unmatched subgoal, so a plan that lists the
    milestones in order matches them in order.
    """
    used: set[int] = set()
    out: list[int | None] = []
    for step in plan:
        hit = None
        for j, goal in enumerate(subgoals):
            if j not in used and goal.matches(step):
                hit = j
                break
        if hit is not None:
            used.add(hit)
        out.append(hit)
    return out


def _lis_length(seq: Sequence[int]) -> int:
    tails: list[int] = []
    for x in seq:
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if tails[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(tails):
            tails.append(x)
        else:
            tails[lo] = x
    return len(tails)


def plan_score(plan: Sequence[str], subgoals: Sequence[Subgoal]) -> float:
    """How well a declared plan covers and orders the true subgoals, in [0, 1].

    ``recall`` = (longest run of matched subgoals in the true order) / (number of subgoals);
    ``precision`` = matched steps / plan steps. Score = recall * (0.75 + 0.25 * precision): coverage in
    order dominates; steps that match no milestone cost a little. An empty plan scores 0.
    """
    if not plan or not subgoals:
        return 0.0
    matched = [j for j in match_steps(plan, subgoals) if j is not None]
    if not matched:
        return 0.0
    recall = _lis_length(matched) / len(subgoals)
    precision = len(matched) / len(plan)
    return float(recall * (0.75 + 0.25 * precision))


def plan_coverage(plan: Sequence[str], subgoals: Sequence[Subgoal]) -> tuple[bool, ...]:
    """Per milestone: whether a step of ``plan`` covers it in an order that can be executed.

    Steps are matched to milestones as by :func:`match_steps`; of the matched milestones, those of the longest
    run that is in the true order count (a plan that puts "put the mug" before "take the mug" covers one of the
    two). All False for an empty plan. Cached: an env reports it on every step for the same declared plan.
    """
    if not plan:
        return (False,) * len(subgoals)
    return _coverage(tuple(plan), tuple(subgoals))


@lru_cache(maxsize=4096)
def _coverage(plan: tuple[str, ...], subgoals: tuple[Subgoal, ...]) -> tuple[bool, ...]:
    matched = [j for j in match_steps(plan, subgoals) if j is not None]
    best: list[list[int]] = []  # best[i]: the longest increasing run of matched ending at matched[i]
    for i, j in enumerate(matched):
        prev = max((best[k] for k in range(i) if matched[k] < j), key=len, default=[])
        best.append([*prev, j])
    run = set(max(best, key=len, default=[]))
    return tuple(j in run for j in range(len(subgoals)))


def completeness(coverage: Sequence[bool], done: Sequence[bool]) -> float:
    """Completeness of a plan in [0, 1]: the mean over the K milestones of (covered + reached) / 2, where covered
    is :func:`plan_coverage` and reached says the executor that followed the plan reached the milestone.
    Half of it is decided by the plan's text alone, half by what the plan made the executor do."""
    if len(coverage) != len(done):
        raise ValueError(f"coverage has {len(coverage)} milestones, done {len(done)}")
    if not coverage:
        return 0.0
    return float(sum(bool(c) + bool(d) for c, d in zip(coverage, done, strict=True)) / (2 * len(coverage)))


def plan_step(plan: Sequence[str], subgoals: Sequence[Subgoal], done: Sequence[bool]) -> int:
    """Index of the first plan step not yet achieved.

    A step that matches a milestone is achieved when that milestone is satisfied; a step that matches no
    milestone cannot be checked and counts as achieved once a later step is. Returns ``len(plan)`` when
    every checkable step is achieved.
    """
    matches = match_steps(plan, subgoals)
    first_open = len(plan)
    for i, j in enumerate(matches):
        if j is not None and not done[j]:
            first_open = i
            break
    # unverifiable steps right before the first open one are not yet achieved either
    while first_open > 0 and first_open < len(plan) and matches[first_open - 1] is None:
        first_open -= 1
    return first_open


def oracle_plan_text(subgoals: Sequence[Subgoal]) -> tuple[str, ...]:
    """The natural-language global plan of a task: one step per milestone."""
    return tuple(g.text[:1].upper() + g.text[1:] for g in subgoals)
