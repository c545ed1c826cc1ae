"""The household world: mutable state, transitions and text, following ALFWorld's PDDL and grammar.

Rules (``alfred.pddl`` of ALFWorld 0.4.2, checked command by command against the real engine by
``tests/alfworld/test_differential.py``):

* the agent starts in the middle of the room and must ``go to`` a receptacle to act on it;
* openable receptacles must be open to take from, put into or see into;
* one object in hand; ``move O to R`` needs the receptacle's class to be able to contain the object's;
* ``heat`` only with a microwave, ``cool`` with a fridge, ``clean`` with a sinkbasin, object in hand;
  heating removes coldness and cooling removes heat;
* ``use`` toggles a lamp in a receptacle where the agent is; ``slice`` needs a knife in hand.

Anything that is not exactly an applicable command answers ``Nothing happens.`` and changes nothing.
Text templates live in :mod:`pilot_envs.alfworld.text`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pilot_envs.alfworld import text as T
from pilot_envs.alfworld.catalog import CAN_CONTAIN, OBJECT_CLASSES
from pilot_envs.alfworld.scene import Scene
from pilot_envs.core.snapshot import register_state_class

__all__ = ["World"]

_MISSING = object()
_KNIVES = frozenset({"Knife", "ButterKnife"})
_APPLIANCE = {"heat": "Microwave", "cool": "Fridge", "clean": "SinkBasin"}


@register_state_class
class World:
    """Mutable state of one household, built from a :class:`Scene`."""

    #: everything that changes after ``__init__`` (the rest is derived from the scene); a snapshot holds the scene
    #: and these, and restoring rebuilds the world from the scene and sets them: time proportional to the state
    MUTABLE = ("agent", "holding", "opened", "contents", "location", "clean", "hot", "cool", "sliced", "toggled",
               "version")

    def __init__(self, scene: Scene, *, legacy: bool = False):
        self.scene = scene
        self.legacy = legacy
        self.receptacles: tuple[str, ...] = tuple(r.name for r in scene.receptacles)
        self.rec_cls: dict[str, str] = {r.name: r.cls for r in scene.receptacles}
        self.openable: frozenset[str] = frozenset(r.name for r in scene.receptacles if r.openable)
        self.opened: set[str] = {r.name for r in scene.receptacles if r.openable and r.opened}
        self.obj_cls: dict[str, str] = {o.name: o.cls for o in scene.objects}
        self.contents: dict[str, list[str]] = {r: [] for r in self.receptacles}
        self.location: dict[str, str | None] = {}
        for o in scene.objects:
            self.contents[o.location].append(o.name)
            self.location[o.name] = o.location
        self.loc_number: dict[str, int] = {r: i + 1 for i, r in enumerate(self.receptacles)}
        self.order: dict[str, int] = {r: i for i, r in enumerate(self.receptacles)}
        self.by_class: dict[str, tuple[str, ...]] = {}
        for o, c in self.obj_cls.items():
            self.by_class[c] = (*self.by_class.get(c, ()), o)
        self.recs_by_class: dict[str, tuple[str, ...]] = {}
        for r, c in self.rec_cls.items():
            self.recs_by_class[c] = (*self.recs_by_class.get(c, ()), r)
        self.agent: str | None = None
        self.holding: str | None = None
        self.clean: set[str] = set()
        self.hot: set[str] = set()
        self.cool: set[str] = set()
        self.sliced: set[str] = set()
        self.toggled: set[str] = set()
        # ``version`` is bumped on every change except the agent's position; (agent, version) identifies a
        # state within an episode, so derived values (admissible commands, expert plan, stage, hash) are
        # memoised on it and a walk between receptacles costs dictionary look-ups.
        self.version = 0
        self._memo: dict[tuple, object] = {}
        self._verbs: dict[str, Callable[[str], str | None]] = {
            "go": self._go,
            "open": self._open,
            "close": self._close,
            "take": self._take,
            "move": self._move,
            "put": self._put,
            "heat": self._process,
            "cool": self._process,
            "clean": self._process,
            "use": self._use,
            "slice": self._slice,
            "examine": self._examine,
            "inventory": self._inventory,
            "look": self._look,
            "help": self._help,
        }

    def copy(self) -> World:
        """An independent copy of the state (cheap: static tables are shared, caches are not copied)."""
        new = object.__new__(World)
        new.__dict__.update(self.__dict__)
        new.opened, new.clean, new.hot, new.cool = set(self.opened), set(self.clean), set(self.hot), set(self.cool)
        new.sliced, new.toggled = set(self.sliced), set(self.toggled)
        new.contents = {r: list(objs) for r, objs in self.contents.items()}
        new.location = dict(self.location)
        new._memo = {}
        new._verbs = {name: getattr(new, fn.__name__) for name, fn in self._verbs.items()}
        return new

    def _snapshot_encode(self) -> dict:
        return {"scene": self.scene, "legacy": self.legacy, **{k: getattr(self, k) for k in self.MUTABLE}}

    @classmethod
    def _snapshot_decode(cls, state: dict) -> World:
        world = cls._blank(state)
        for key in cls.MUTABLE:
            setattr(world, key, state[key])
        return world

    @classmethod
    def _blank(cls, state: dict) -> World:
        return cls(state["scene"], legacy=state["legacy"])

    # ------------------------------------------------------------------ queries
    def visible(self, rec: str) -> bool:
        return rec not in self.openable or rec in self.opened

    def cached(self, name: str, fn: Callable[[], object]) -> object:
        """``fn()``, memoised for the current state."""
        return self._memoise((name, self.agent, self.version), fn)

    def _memoise(self, key: tuple, fn: Callable[[], object]) -> object:
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            if len(self._memo) > 50_000:
                self._memo.clear()
            value = self._memo[key] = fn()
        return value

    def state_hash(self) -> str:
        return self.cached("hash", self._hash)  # type: ignore[return-value]

    def _hash(self) -> str:
        # objects keep their scene order in ``location``, so their names need not be repeated
        state = (
            self.scene.task_id,
            self.agent,
            self.holding,
            tuple(self.location.values()),
            *(tuple(sorted(s)) for s in (self.opened, self.clean, self.hot, self.cool, self.sliced, self.toggled)),
        )
        return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()

    def listing(self, rec: str) -> list[str]:
        """Objects shown in ``rec``, in the engine's order."""
        return T.order_objects(self.contents[rec])

    def room_text(self) -> str:
        return T.room(self.receptacles)

    def intro(self) -> str:
        return T.intro(self.room_text(), self.scene.task.goal)

    # ------------------------------------------------------------------ transitions
    def execute(self, command: str) -> str | None:
        """Apply a normalised command; return its feedback, or None if nothing happens."""
        verb = command.split(" ", 1)[0]
        fn = self._verbs.get(verb)
        if fn is None:
            return None
        return fn(command)

    def _changed(self) -> None:
        self.version += 1

    def _rec_arg(self, name: str) -> str | None:
        return name if name in self.rec_cls else None

    def _view(self, rec: str) -> str:
        if rec in self.openable:
            if rec in self.opened:
                return T.open_view(rec, self.listing(rec))
            return T.closed_view(rec)
        return T.surface_view(rec, self.listing(rec))

    def _go(self, cmd: str) -> str | None:
        if not cmd.startswith("go to "):
            return None
        rec = self._rec_arg(cmd[6:])
        if rec is None or rec == self.agent:  # going where you already are: nothing happens
            return None
        self.agent = rec
        arrive = T.arrive_legacy(self.loc_number[rec]) if self.legacy else T.arrive(rec)
        return arrive + self._view(rec)

    def _open(self, cmd: str) -> str | None:
        rec = self._rec_arg(cmd[5:])
        if rec is None or rec != self.agent or rec not in self.openable or rec in self.opened:
            return None
        self.opened.add(rec)
        self._changed()
        return T.opened(rec) + self._view(rec)

    def _close(self, cmd: str) -> str | None:
        rec = self._rec_arg(cmd[6:])
        if rec is None or rec != self.agent or rec not in self.opened:
            return None
        self.opened.discard(rec)
        self._changed()
        return T.closed(rec)

    def _take(self, cmd: str) -> str | None:
        obj, sep, rec = cmd[5:].partition(" from ")
        if not sep or obj not in self.obj_cls or rec != self.agent or self.holding is not None:
            return None
        if self.location.get(obj) != rec or not self.visible(rec) or not OBJECT_CLASSES[self.obj_cls[obj]].pickupable:
            return None
        self.contents[rec].remove(obj)
        self.location[obj] = None
        self.holding = obj
        self._changed()
        return T.picked(obj, rec)

    def can_place(self, obj: str, rec: str) -> bool:
        return (
            self.holding == obj
            and self.agent == rec
            and self.visible(rec)
            and self.obj_cls[obj] in CAN_CONTAIN.get(self.rec_cls[rec], ())
        )

    def _place(self, obj: str, rec: str) -> bool:
        if obj not in self.obj_cls or rec not in self.rec_cls or not self.can_place(obj, rec):
            return False
        self.contents[rec].append(obj)
        self.location[obj] = rec
        self.holding = None
        self._changed()
        return True

    def _move(self, cmd: str) -> str | None:
        obj, sep, rec = cmd[5:].partition(" to ")
        if not sep or not self._place(obj, rec):
            return None
        return T.put_legacy(obj, rec) if self.legacy else T.moved(obj, rec)

    def _put(self, cmd: str) -> str | None:
        # the pre-0.4 command: "put O in/on R" (also "put O in R", "put O on R")
        body = cmd[4:]
        for sep in (" in/on ", " in ", " on ", " into ", " onto "):
            obj, found, rec = body.partition(sep)
            if found and obj in self.obj_cls and rec in self.rec_cls:
                if not self._place(obj, rec):
                    return None
                return T.put_legacy(obj, rec) if self.legacy else T.moved(obj, rec)
        return None

    def _process(self, cmd: str) -> str | None:
        verb, _, rest = cmd.partition(" ")
        obj, sep, rec = rest.partition(" with ")
        if not sep or obj != self.holding or rec != self.agent or self.rec_cls[rec] != _APPLIANCE[verb]:
            return None
        props = OBJECT_CLASSES[self.obj_cls[obj]]
        if not getattr(props, {"heat": "heatable", "cool": "coolable", "clean": "cleanable"}[verb]):
            return None
        if verb == "heat":
            self.hot.add(obj)
            self.cool.discard(obj)
        elif verb == "cool":
            self.cool.add(obj)
            self.hot.discard(obj)
        else:
            self.clean.add(obj)
        self._changed()
        return T.processed(verb, obj, rec)

    def _use(self, cmd: str) -> str | None:
        obj = cmd[4:]
        if obj not in self.obj_cls or self.agent is None or self.location.get(obj) != self.agent:
            return None
        if not OBJECT_CLASSES[self.obj_cls[obj]].toggleable:
            return None
        if obj not in self.toggled:
            self.toggled.add(obj)
            self._changed()
        return T.turned_on(obj)

    def _slice(self, cmd: str) -> str | None:
        target, sep, knife = cmd[6:].partition(" with ")
        if not sep or target not in self.obj_cls or knife != self.holding or self.obj_cls.get(knife) not in _KNIVES:
            return None
        if self.agent is None or self.location.get(target) != self.agent:
            return None
        if not OBJECT_CLASSES[self.obj_cls[target]].sliceable:
            return None
        if target not in self.sliced:
            self.sliced.add(target)
            self._changed()
        return T.sliced(target, knife)

    def _examine(self, cmd: str) -> str | None:
        name = cmd[8:] if cmd.startswith("examine ") else ""
        if name in self.rec_cls:
            return self._view(name) if name == self.agent else None
        if name in self.obj_cls and self.holding == name:  # only the object in hand can be examined
            return T.examine_object(
                    name,
                    clean=name in self.clean,
                    hot=name in self.hot,
                    cool=name in self.cool,
                    sliced=name in self.sliced,
                    toggleable=OBJECT_CLASSES[self.obj_cls[name]].toggleable,
                    toggled=name in self.toggled,
                    sliceable=OBJECT_CLASSES[self.obj_cls[name]].sliceable,
                )
        return None

    def _inventory(self, cmd: str) -> str | None:
        return T.inventory(self.holding) if cmd == "inventory" else None

    def _help(self, cmd: str) -> str | None:
        return T.HELP if cmd == "help" else None

    def _look(self, cmd: str) -> str | None:
        if cmd != "look":
            return None
        return T.look_middle() if self.agent is None else T.look_at(self.agent)

    # ------------------------------------------------------------------ admissible commands
    def admissible_commands(self) -> tuple[str, ...]:
        return self.cached("admissible", self._admissible)  # type: ignore[return-value]

    def _admissible(self) -> tuple[str, ...]:
        here = self.agent
        cmds = [f"go to {r}" for r in self.receptacles if r != here]
        cmds += ["help", "inventory", "look"]
        if here is not None:
            cmds.append(f"examine {here}")
            if here in self.openable:
                cmds.append(f"close {here}" if here in self.opened else f"open {here}")
            visible = self.visible(here)
            inside = self.contents[here]
            if visible and self.holding is None:
                cmds += [f"take {o} from {here}" for o in inside if OBJECT_CLASSES[self.obj_cls[o]].pickupable]
            cmds += [f"use {o}" for o in inside if OBJECT_CLASSES[self.obj_cls[o]].toggleable]
            held = self.holding
            if held is not None:
                if self.can_place(held, here):
                    cmds.append(f"put {held} in/on {here}" if self.legacy else f"move {held} to {here}")
                appliance = self.rec_cls[here]
                props = OBJECT_CLASSES[self.obj_cls[held]]
                for verb, flag in (("heat", props.heatable), ("cool", props.coolable), ("clean", props.cleanable)):
                    if flag and _APPLIANCE[verb] == appliance:
                        cmds.append(f"{verb} {held} with {here}")
                if self.obj_cls[held] in _KNIVES:
                    cmds += [f"slice {o} with {held}" for o in inside if OBJECT_CLASSES[self.obj_cls[o]].sliceable]
        if self.holding is not None:
            cmds.append(f"examine {self.holding}")
        return T.order_commands(cmds)
