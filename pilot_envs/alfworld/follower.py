"""The plan follower: a fixed executor that carries out a plan literally, step by step, from what it observes.

It is the executor of the planning setting (docs/planning.md): the planner's plan is the only thing that
decides where it searches and in which order, so a better plan is measurably a better outcome. It reads
only the observation (``plan``, ``admissible_commands``), never the world state or the oracle.

A plan step is read by :func:`read_step`: its first verb word (find/locate/search/check ..., take/pick ...,
go/walk ..., put/place/move ..., clean/heat/cool ..., use/turn ...), its object (the first word that is
neither a verb, a receptacle, nor a filler word like "first") and the receptacles it names, in the order
it names them ("cabinet 3" names one receptacle, "cabinet" every cabinet of the room in room order).
Then:

* **find** *o* [places]: visit the named places in order (opening closed ones), then, if *o* is still not
  seen, every other receptacle in the room's order, until an *o* it has not put away yet is in sight (nothing
  when it holds one);
* **take** *o*: take an *o* in sight (skipped when none is, or when it holds one);
* **go** place: go to the first place named;
* **put** *o* in place: go to the first place named (open it when closed), put the held object there;
* **clean/heat/cool** *o* with place: go to the first place named and process the held object there;
* **use** *o*: use an *o* in sight (a lamp).

A step it cannot read or carry out is skipped without an env step; after the last step it has nothing to
say (``act`` returns None). A new plan in the observation restarts it at that plan's first step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PlanFollower", "Step", "VERBS", "read_step", "rooms_receptacles"]

VERBS: Mapping[str, tuple[str, ...]] = {
    "find": ("find", "locate", "search", "seek", "check", "explore", "look"),
    "take": ("take", "pick", "grab", "get", "collect", "retrieve", "obtain"),
    "go": ("go", "walk", "navigate", "head", "return", "travel"),
    "put": ("put", "place", "move", "drop", "leave", "set", "store", "deposit"),
    "clean": ("clean", "wash", "rinse"),
    "heat": ("heat", "warm", "microwave", "cook"),
    "cool": ("cool", "chill", "refrigerate", "freeze"),
    "use": ("use", "turn", "switch", "toggle", "light"),
}
"""Verb -> the words that name it in a plan step (the first such word of a step decides its verb)."""
_VERB_OF = {w: verb for verb, ws in VERBS.items() for w in ws}
_FILLER = frozenset(
    ["a", "an", "the", "to", "of", "in", "on", "at", "with", "from", "into", "onto", "and", "then", "it", "them", "some", "your", "you", "up", "for", "by", "first", "second", "third", "both", "one", "two", "another", "again", "other", "next", "step", "all", "any", "each", "there", "inside", "out"]
)
_TOKEN = re.compile(r"[a-z]+|\d+")
_RECEPTACLE = re.compile(r"^go to (.+ \d+)$")


@dataclass(frozen=True)
class Step:
    """One plan step as the follower reads it."""

    verb: str
    obj: str | None
    places: tuple[str, ...]
    """Receptacle names (``"cabinet 3"``), in the order the step names them."""


def rooms_receptacles(admissible: Sequence[str]) -> tuple[str, ...]:
    """The receptacles named by ``go to X`` admissible commands, in their listed order."""
    return tuple(m.group(1) for c in admissible if (m := _RECEPTACLE.match(str(c))))


def read_step(text: str, receptacles: Sequence[str]) -> Step | None:
    """Read one plan step against the room's receptacles; None when it names no verb."""
    tokens = _TOKEN.findall(str(text).lower())
    by_class: dict[str, list[str]] = {}
    for r in receptacles:
        by_class.setdefault(r.rsplit(" ", 1)[0], []).append(r)
    verb, obj, places = None, None, []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in by_class:
            named = f"{tok} {tokens[i + 1]}" if i + 1 < len(tokens) and tokens[i + 1].isdigit() else None
            if named is not None and named in receptacles:
                places.append(named)
                i += 2
                continue
            places.extend(by_class[tok])
        elif verb is None and tok in _VERB_OF:
            verb = _VERB_OF[tok]
        elif obj is None and tok not in _VERB_OF and tok not in _FILLER and not tok.isdigit():
            obj = tok
        i += 1
    if verb is None:
        return None
    return Step(verb, obj, tuple(dict.fromkeys(places)))


class PlanFollower:
    """A fixed executor for ALFWorld-style envs that follows ``obs["plan"]`` literally (module docstring).

    Implements the :class:`pilot_envs.agents.Agent` protocol, except that :meth:`act` returns None once the
    plan is carried out (or when there is none): the caller decides what happens then.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._plan: tuple[str, ...] | None = None
        self._run: Iterator[str] | None = None
        self._obs: Mapping[str, Any] = {}
        self._receptacles: tuple[str, ...] = ()
        self.at: str | None = None
        self.holding: str | None = None
        self.placed: set[str] = set()

    def act(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str | None:
        """The next command, or None when the plan is done (or there is no plan)."""
        self._obs = obs
        seen = rooms_receptacles(self._admissible())
        self._receptacles = tuple(dict.fromkeys((*self._receptacles, *seen)))
        plan = tuple(str(s) for s in (obs.get("plan") or ()))
        if plan != self._plan:
            self._plan, self._run = plan, self._follow(plan)
        assert self._run is not None
        return next(self._run, None)

    # ------------------------------------------------------------------ steps
    def _admissible(self) -> list[str]:
        return [str(c) for c in self._obs.get("admissible_commands", ())]

    def _follow(self, plan: Sequence[str]) -> Iterator[str]:
        for text in plan:
            step = read_step(text, self._receptacles)
            if step is not None:
                yield from getattr(self, f"_{step.verb}")(step)

    def _goto(self, place: str, *, open_it: bool = True) -> Iterator[str]:
        if self.at != place:
            self.at = place
            yield f"go to {place}"
        if open_it and f"open {place}" in self._admissible():
            yield f"open {place}"

    def _in_sight(self, obj: str | None, verb: str = "take") -> str | None:
        """An admissible ``take obj N from ..`` (or ``use obj N``) of an object not put away by this plan."""
        if obj is None:
            return None
        for cmd in self._admissible():
            words = cmd.split(" ")
            if (words[0] == verb and len(words) >= 3 and words[1] == obj and words[2].isdigit()
                    and f"{words[1]} {words[2]}" not in self.placed):
                return cmd
        return None

    def _visible(self, obj: str | None) -> bool:
        return self._in_sight(obj) is not None or self._in_sight(obj, "use") is not None

    def _holds(self, obj: str | None) -> bool:
        return self.holding is not None and self.holding.rsplit(" ", 1)[0] == obj

    def _find(self, step: Step) -> Iterator[str]:
        if step.obj is None or self._holds(step.obj) or self._visible(step.obj):
            return
        rest = [r for r in self._receptacles if r not in step.places]
        for place in (*step.places, *rest):
            yield from self._goto(place)
            if self._visible(step.obj):
                return

    def _take(self, step: Step) -> Iterator[str]:
        if self._holds(step.obj):
            return
        cmd = self._in_sight(step.obj)
        if cmd is not None:
            self.holding = " ".join(cmd.split(" ")[1:3])
            yield cmd

    def _go(self, step: Step) -> Iterator[str]:
        if step.places:
            yield from self._goto(step.places[0], open_it=False)

    def _put(self, step: Step) -> Iterator[str]:
        if self.holding is None or not step.places:
            return
        here = self.at if self.at in step.places else step.places[0]
        yield from self._goto(here)
        for cmd in self._admissible():
            if cmd in (f"move {self.holding} to {here}", f"put {self.holding} in/on {here}"):
                self.placed.add(self.holding)
                self.holding = None
                yield cmd
                return

    def _process(self, verb: str, step: Step) -> Iterator[str]:
        if self.holding is None or not step.places:
            return
        yield from self._goto(step.places[0], open_it=False)
        cmd = f"{verb} {self.holding} with {step.places[0]}"
        if cmd in self._admissible():
            yield cmd

    def _clean(self, step: Step) -> Iterator[str]:
        return self._process("clean", step)

    def _heat(self, step: Step) -> Iterator[str]:
        return self._process("heat", step)

    def _cool(self, step: Step) -> Iterator[str]:
        return self._process("cool", step)

    def _use(self, step: Step) -> Iterator[str]:
        cmd = self._in_sight(step.obj, "use")
        if cmd is not None:
            yield cmd
