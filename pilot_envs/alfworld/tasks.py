"""The task generator and the fixed splits of PilotALFWorld.

:func:`generate_scene` turns a random generator into a :class:`~pilot_envs.alfworld.scene.Scene`, the way
ALFRED's generator builds its tasks (``gen/scripts/generate_trajectories.py``):

1. choose a task type (weighted by ALFWorld's train mix, :data:`ALFWORLD_TRAIN_MIX`) among those some
   given layout supports, then a layout supporting it, then a target object class uniformly among the
   valid ones and a target receptacle (or lamp) class uniformly among its valid ones
   (:data:`~pilot_envs.alfworld.catalog.TASK_TARGETS`), then one of the type's two goal templates;
2. instantiate every receptacle of the layout (``cabinet 1`` .. ``cabinet 8``), openable ones closed;
3. draw object counts as ALFRED does: 1-4 instances of the target class (2-4 for pick_two), 1-3 of every
   other object class of the floor plan, one of each lamp class present;
4. put every object in a receptacle that can hold it (:data:`~pilot_envs.alfworld.catalog.CAN_CONTAIN`),
   uniformly over receptacle instances. Target objects never start in a receptacle of the target class,
   so no goal holds at the start.

A layout supports a task type when its room type is one ALFRED uses for the type, the appliance exists
(SinkBasin / Microwave / Fridge), and some target object class is present together with a target class and
a *different* receptacle the object can start in (for light tasks: a lamp). So every scene is solvable.

Small scenes: ``max_receptacles`` (at least 3) keeps one target receptacle, the appliance, one receptacle
that can hold the target object and one holding the lamp, plus random others; kept receptacles are
renumbered ``1..k`` per class. ``max_objects`` (at least 2) keeps the needed target instances (two for
pick_two) and the lamp, plus random others. Object classes no kept receptacle can hold are dropped. The
task (layout, type, classes, goal) does not depend on the caps.

Unlimited procedural tasks: :func:`procedural_scene` (from a seed, train layouts, task id
``procedural/<seed in hex>``) and :func:`sample_scene` (draws that seed from a generator).

Order: receptacles by (class word, number), objects by (class word, number).

Splits (fixed forever): ``train`` (3553 tasks) and ``valid_seen`` (140) use :data:`TRAIN_LAYOUTS`,
``valid_unseen`` (134) uses :data:`UNSEEN_LAYOUTS` only. Task ``i`` of a split has the type
``split_task_types(split)[i]`` - the split's type counts (ALFWorld's train mix, scaled) interleaved by a
deterministic round-robin - and is generated from ``SeedSequence([SPLIT_SEED, split number, i])``. With
``task_types`` the split is the subsequence of tasks of those types, in order; task ``j`` of that subset
is the very same scene (same ``task_id``) as in the full split.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import numpy as np

from pilot_envs.alfworld.catalog import (
    APPLIANCES,
    CAN_CONTAIN,
    GOAL_TEMPLATES,
    LAMP_CLASSES,
    LAYOUTS,
    RECEPTACLE_CLASSES,
    TASK_ROOM_TYPES,
    TASK_TARGETS,
    Layout,
    word,
)
from pilot_envs.alfworld.scene import TASK_TYPES, ObjectSpec, ReceptacleSpec, Scene, TaskSpec

__all__ = [
    "SPLITS", "SPLIT_SIZES", "SPLIT_SEED", "ALFWORLD_TRAIN_MIX", "UNSEEN_LAYOUT_NAMES", "TRAIN_LAYOUTS",
    "UNSEEN_LAYOUTS", "MIN_RECEPTACLES", "MIN_OBJECTS", "generate_scene", "split_scene", "split_size",
    "split_task_types", "sample_scene", "procedural_scene", "layout_supports",
]

SPLITS: tuple[str, ...] = ("train", "valid_seen", "valid_unseen")
SPLIT_SIZES: dict[str, int] = {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
SPLIT_SEED = 0x70696C6F  # "pilo"; the first word of every split task's SeedSequence
PROCEDURAL_SEED = 0x74617368  # "task"; the first word of every procedural task's SeedSequence

ALFWORLD_TRAIN_MIX: dict[str, int] = {
    "pick_and_place_simple": 790,
    "look_at_obj_in_light": 308,
    "pick_clean_then_place_in_recep": 650,
    "pick_heat_then_place_in_recep": 459,
    "pick_cool_then_place_in_recep": 533,
    "pick_two_obj_and_place": 813,
}
"""Games per task type in ALFWorld's train split (3553 in all); the mix of every split here."""

UNSEEN_LAYOUT_NAMES: frozenset[str] = frozenset(
    f"FloorPlan{n}" for n in (9, 10, 29, 215, 219, 226, 308, 315, 325, 404, 424, 425)
)
"""ALFRED's unseen floor plans (its valid_unseen and test_unseen rooms), three per room type."""

TRAIN_LAYOUTS: tuple[Layout, ...] = tuple(lay for lay in LAYOUTS if lay.name not in UNSEEN_LAYOUT_NAMES)
UNSEEN_LAYOUTS: tuple[Layout, ...] = tuple(lay for lay in LAYOUTS if lay.name in UNSEEN_LAYOUT_NAMES)

MIN_RECEPTACLES = 3  # target receptacle + appliance + where the object starts
MIN_OBJECTS = 2  # two targets (pick_two) or target + lamp (light)

_TARGET_COUNT = {"pick_two_obj_and_place": (2, 4)}  # ALFRED: 1..4 instances of the target, 2..4 for two
_DEFAULT_TARGET_COUNT = (1, 4)
_DISTRACTOR_COUNT = (1, 3)  # ALFRED's MAX_NUM_OF_OBJ_INSTANCES
_SPLIT_NUMBER = {split: i for i, split in enumerate(SPLITS)}
_LAYOUT_GROUP = {"train": "seen", "valid_seen": "seen", "valid_unseen": "unseen"}
_GROUPS: dict[str, tuple[Layout, ...]] = {"seen": TRAIN_LAYOUTS, "unseen": UNSEEN_LAYOUTS}
_T = TypeVar("_T")
_HOST_CLASSES: dict[str, tuple[str, ...]] = {
    obj: tuple(r for r in sorted(CAN_CONTAIN, key=word) if obj in CAN_CONTAIN[r])
    for obj in {o for objs in CAN_CONTAIN.values() for o in objs}
}

# ------------------------------------------------------------------------------------------ randomness


class _Draws:
    """Uniform draws from one numpy ``Generator``, fetched in batches (one numpy call, not one per choice)."""

    __slots__ = ("_buf", "_i", "_rng")
    _BATCH = 128

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        if self._i == len(self._buf):
            self._buf = self._rng.random(self._BATCH).tolist()
            self._i = 0
        u = self._buf[self._i]
        self._i += 1
        return min(int(u * n), n - 1)

    def between(self, lo: int, hi: int) -> int:
        """A uniform integer in ``[lo, hi]``."""
        return lo + self.below(hi - lo + 1)

    def pick(self, seq: Sequence[_T]) -> _T:
        """A uniform element of ``seq``."""
        return seq[self.below(len(seq))]

    def weighted(self, weights: Sequence[int]) -> int:
        """An index drawn with probability proportional to ``weights`` (positive integers)."""
        r = self.below(sum(weights))
        for i, w in enumerate(weights):
            r -= w
            if r < 0:
                return i
        raise AssertionError("unreachable")

    def sample(self, seq: Sequence[_T], k: int) -> list[_T]:
        """``k`` distinct items of ``seq`` in random order (partial Fisher-Yates)."""
        items = list(seq)
        for i in range(k):
            j = i + self.below(len(items) - i)
            items[i], items[j] = items[j], items[i]
        return items[:k]


# ------------------------------------------------------------------------------------ what a layout offers


@cache
def _options(layout: Layout, task_type: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Valid (target object class, target classes) of a task type in a layout; empty if unsupported."""
    present = {cls for cls, _ in layout.receptacles}
    appliance = APPLIANCES.get(task_type)
    if layout.room_type not in TASK_ROOM_TYPES[task_type] or (appliance and appliance not in present):
        return ()
    valid = TASK_TARGETS[task_type]
    lamps = [lamp for lamp in LAMP_CLASSES if lamp in layout.objects]
    options = []
    for obj in layout.objects:
        if obj not in valid:
            continue
        if task_type == "look_at_obj_in_light":
            targets = lamps
        else:  # a target class, and somewhere else for the object to start
            hosts = present.intersection(_HOST_CLASSES.get(obj, ()))
            targets = [r for r in valid[obj] & present if len(hosts) > 1 or r not in hosts]
        if targets:
            options.append((obj, tuple(sorted(targets, key=str.lower))))  # str.lower is word()
    return tuple(options)


def layout_supports(layout: Layout, task_type: str) -> bool:
    """Whether :func:`generate_scene` can make a solvable ``task_type`` task in ``layout``."""
    return bool(_options(layout, task_type))


def _pools(layouts: Iterable[Layout], task_types: Iterable[str]) -> dict[str, tuple[Layout, ...]]:
    """Task type -> the layouts supporting it (types no layout supports are left out)."""
    layouts = tuple(layouts)
    pools = {t: tuple(lay for lay in layouts if _options(lay, t)) for t in task_types}
    return {t: pool for t, pool in pools.items() if pool}


@cache
def _group_table(group: str) -> dict[str, tuple[Layout, ...]]:
    """Task type -> supporting layouts of a layout group, all types at once (a few ms, once)."""
    return _pools(_GROUPS[group], TASK_TYPES)


def _group_pools(group: str, task_types: Iterable[str]) -> dict[str, tuple[Layout, ...]]:
    table = _group_table(group)
    return {t: table[t] for t in task_types if t in table}


@dataclass
class _Room:
    """Receptacle instances of a scene, with a memo of which instances can hold which class."""

    receptacles: tuple[ReceptacleSpec, ...]
    by_class: dict[str, tuple[str, ...]]
    _hosts: dict[tuple[str, str | None], tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, instances: Iterable[tuple[str, int]]) -> _Room:
        """Room from (class, rank) pairs, numbered 1..k per class in rank order."""
        by_class: dict[str, list[str]] = {}
        for rcls, _ in sorted(instances, key=lambda inst: (word(inst[0]), inst[1])):
            names = by_class.setdefault(rcls, [])
            names.append(f"{word(rcls)} {len(names) + 1}")
        specs = tuple(
            ReceptacleSpec(name, rcls, RECEPTACLE_CLASSES[rcls].openable)
            for rcls, names in by_class.items()
            for name in names
        )
        return cls(specs, {rcls: tuple(names) for rcls, names in by_class.items()})

    def hosts(self, obj_cls: str, exclude: str | None = None) -> tuple[str, ...]:
        """Names of the receptacles that can hold ``obj_cls``, leaving out class ``exclude``."""
        key = (obj_cls, exclude)
        if key not in self._hosts:
            self._hosts[key] = tuple(
                name
                for rcls in _HOST_CLASSES.get(obj_cls, ())
                if rcls != exclude
                for name in self.by_class.get(rcls, ())
            )
        return self._hosts[key]


def _instances(layout: Layout) -> list[tuple[str, int]]:
    return [(cls, n) for cls, count in layout.receptacles for n in range(1, count + 1)]


@cache
def _full_room(layout: Layout) -> _Room:
    return _Room.of(_instances(layout))


# ------------------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class _Choice:
    """The task drawn before anything is placed."""

    layout: Layout
    task: TaskSpec
    target_exclude: str | None  # receptacle class target objects must not start in


def _choose_task(d: _Draws, pools: Mapping[str, tuple[Layout, ...]]) -> _Choice:
    types = list(pools)
    task_type = types[d.weighted([ALFWORLD_TRAIN_MIX[t] for t in types])]
    layout = d.pick(pools[task_type])
    obj, targets = d.pick(_options(layout, task_type))
    target = d.pick(targets)
    template = d.pick(GOAL_TEMPLATES[task_type])
    recep, lamp = (None, target) if task_type == "look_at_obj_in_light" else (target, None)
    goal = template.format(obj=word(obj), recep=word(target), lamp=word(target))
    return _Choice(layout, TaskSpec(task_type, obj, recep, lamp, goal), recep)


def _object_counts(d: _Draws, choice: _Choice) -> dict[str, int]:
    task = choice.task
    counts = {}
    for cls in choice.layout.objects:
        if cls in LAMP_CLASSES:
            counts[cls] = 1
        elif cls == task.obj_cls:
            counts[cls] = d.between(*_TARGET_COUNT.get(task.task_type, _DEFAULT_TARGET_COUNT))
        else:
            counts[cls] = d.between(*_DISTRACTOR_COUNT)
    return counts


def _room(d: _Draws, choice: _Choice, max_receptacles: int | None) -> _Room:
    """The whole room, or the task's receptacles (one per role) plus random others, at most the cap."""
    task, full = choice.task, _full_room(choice.layout)
    names = [spec.name for spec in full.receptacles]
    if max_receptacles is None or len(names) <= max_receptacles:
        return full
    keep = [d.pick(full.hosts(task.obj_cls, choice.target_exclude))]
    for needed in (task.recep_cls, APPLIANCES.get(task.task_type)):
        if needed:
            keep.append(d.pick(full.by_class[needed]))
    if task.lamp_cls:
        keep.append(d.pick(full.hosts(task.lamp_cls)))
    keep = list(dict.fromkeys(keep))
    rest = [name for name in names if name not in keep]
    keep += d.sample(rest, max_receptacles - len(keep))
    position = {name: i for i, name in enumerate(names)}
    return _Room.of((full.receptacles[position[name]].cls, position[name]) for name in keep)


def _small_counts(d: _Draws, counts: dict[str, int], task: TaskSpec, max_objects: int) -> dict[str, int]:
    """Keep the needed targets and the lamp plus random other instances, ``max_objects`` in all."""
    if sum(counts.values()) <= max_objects:
        return counts
    need = 2 if task.task_type == "pick_two_obj_and_place" else 1
    kept = {task.obj_cls: need} | ({task.lamp_cls: 1} if task.lamp_cls else {})
    pool = [cls for cls, n in counts.items() for _ in range(n - kept.get(cls, 0))]
    for cls in d.sample(pool, max_objects - sum(kept.values())):
        kept[cls] = kept.get(cls, 0) + 1
    return {cls: kept[cls] for cls in counts if cls in kept}


def _place(d: _Draws, room: _Room, counts: dict[str, int], choice: _Choice) -> tuple[ObjectSpec, ...]:
    objects = []
    for cls in counts:  # in layout order, i.e. by class word
        exclude = choice.target_exclude if cls == choice.task.obj_cls else None
        hosts = room.hosts(cls, exclude)
        w = word(cls)
        objects.extend(ObjectSpec(f"{w} {n}", cls, d.pick(hosts)) for n in range(1, counts[cls] + 1))
    return tuple(objects)


def _check_caps(max_receptacles: int | None, max_objects: int | None) -> None:
    if max_receptacles is not None and max_receptacles < MIN_RECEPTACLES:
        raise ValueError(f"max_receptacles must be >= {MIN_RECEPTACLES} (or None), got {max_receptacles}")
    if max_objects is not None and max_objects < MIN_OBJECTS:
        raise ValueError(f"max_objects must be >= {MIN_OBJECTS} (or None), got {max_objects}")


def _check_types(task_types: Iterable[str]) -> tuple[str, ...]:
    """The task types in ``TASK_TYPES`` order (so results never depend on the order they were given)."""
    given = tuple(task_types)
    if not given or any(t not in TASK_TYPES for t in given):
        raise ValueError(f"task_types must be a non-empty subset of {TASK_TYPES}, got {given}")
    return tuple(t for t in TASK_TYPES if t in given)


def _generate(
    d: _Draws,
    task_id: str,
    pools: Mapping[str, tuple[Layout, ...]],
    max_receptacles: int | None,
    max_objects: int | None,
) -> Scene:
    choice = _choose_task(d, pools)
    counts = _object_counts(d, choice)
    room = _room(d, choice, max_receptacles)
    counts = {
        cls: n
        for cls, n in counts.items()
        if room.hosts(cls, choice.target_exclude if cls == choice.task.obj_cls else None)
    }
    if max_objects is not None:
        counts = _small_counts(d, counts, choice.task, max_objects)
    objects = _place(d, room, counts, choice)
    layout = choice.layout
    return Scene(task_id, layout.room_type, layout.name, room.receptacles, objects, choice.task)


def generate_scene(
    rng: np.random.Generator,
    *,
    task_id: str,
    layouts: Sequence[Layout],
    task_types: Sequence[str],
    max_receptacles: int | None = None,
    max_objects: int | None = None,
) -> Scene:
    """A random solvable task in one of ``layouts``, of one of ``task_types`` (module docstring).

    All randomness comes from ``rng``. Raises ``ValueError`` when no layout supports any of the task
    types, or a cap is below :data:`MIN_RECEPTACLES` / :data:`MIN_OBJECTS`.
    """
    _check_caps(max_receptacles, max_objects)
    types = _check_types(task_types)
    pools = _pools(layouts, types)
    if not pools:
        raise ValueError(f"none of the {len(layouts)} layouts supports any of {types}")
    return _generate(_Draws(rng), task_id, pools, max_receptacles, max_objects)


# ------------------------------------------------------------------------------------------------ splits


def _split_counts(split: str) -> dict[str, int]:
    """Tasks per type in a split: ALFWorld's train mix scaled to the split size (largest remainder)."""
    size, total = SPLIT_SIZES[split], sum(ALFWORLD_TRAIN_MIX.values())
    exact = {t: ALFWORLD_TRAIN_MIX[t] * size for t in TASK_TYPES}  # numerators over `total`
    counts = {t: exact[t] // total for t in TASK_TYPES}
    by_remainder = sorted(TASK_TYPES, key=lambda t: (-(exact[t] % total), TASK_TYPES.index(t)))
    for t in by_remainder[: size - sum(counts.values())]:
        counts[t] += 1
    return counts


@cache
def split_task_types(split: str) -> tuple[str, ...]:
    """The task type of every task of a split, in index order.

    A deterministic smooth round-robin over the split's type counts: position ``i`` gets the type
    furthest behind its share (``count * (i + 1) / size - used``; ties go to the earlier type of
    ``TASK_TYPES``), so every prefix of the split has nearly the full mix.
    """
    _check_split(split)
    counts, size = _split_counts(split), SPLIT_SIZES[split]
    used = dict.fromkeys(TASK_TYPES, 0)
    sequence = []
    for i in range(size):
        t = max(TASK_TYPES, key=lambda t: (counts[t] * (i + 1) - used[t] * size, -TASK_TYPES.index(t)))
        used[t] += 1
        sequence.append(t)
    return tuple(sequence)


@cache
def _split_indices(split: str, task_types: frozenset[str]) -> tuple[int, ...]:
    return tuple(i for i, t in enumerate(split_task_types(split)) if t in task_types)


def _check_split(split: str) -> None:
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def split_size(split: str, task_types: Sequence[str] | None = None) -> int:
    """How many tasks a split has (of ``task_types`` only, when given)."""
    _check_split(split)
    if task_types is None:
        return SPLIT_SIZES[split]
    return len(_split_indices(split, frozenset(_check_types(task_types))))


def split_scene(
    split: str,
    index: int,
    *,
    task_types: Sequence[str] | None = None,
    max_receptacles: int | None = None,
    max_objects: int | None = None,
) -> Scene:
    """Task ``index`` of a fixed split (``task_id`` ``"<split>/<full-split index, 5 digits>"``).

    With ``task_types``, ``index`` counts only the split's tasks of those types (module docstring).
    Raises ``ValueError`` for an unknown split, unknown task types or an index out of range.
    """
    _check_split(split)
    _check_caps(max_receptacles, max_objects)
    index = operator.index(index)
    if task_types is None:
        indices, what = range(SPLIT_SIZES[split]), f"split {split!r}"
    else:
        types = _check_types(task_types)
        indices, what = _split_indices(split, frozenset(types)), f"split {split!r} restricted to {types}"
    if not 0 <= index < len(indices):
        raise ValueError(f"index {index} out of range for {what}: valid range is 0..{len(indices) - 1}")
    full_index = indices[index]
    task_type = split_task_types(split)[full_index]
    seed = np.random.SeedSequence([SPLIT_SEED, _SPLIT_NUMBER[split], full_index])
    pools = _group_pools(_LAYOUT_GROUP[split], (task_type,))
    task_id = f"{split}/{full_index:05d}"
    return _generate(_Draws(np.random.default_rng(seed)), task_id, pools, max_receptacles, max_objects)


# ---------------------------------------------------------------------------------------- procedural tasks


def procedural_scene(
    seed: int,
    *,
    task_types: Sequence[str] | None = None,
    max_receptacles: int | None = None,
    max_objects: int | None = None,
) -> Scene:
    """The train-layout task of a seed >= 0 (``task_id`` ``"procedural/<seed, 16 hex digits>"``)."""
    _check_caps(max_receptacles, max_objects)
    types = TASK_TYPES if task_types is None else _check_types(task_types)
    rng = np.random.default_rng(np.random.SeedSequence([PROCEDURAL_SEED, seed]))
    pools = _group_pools("seen", types)
    return _generate(_Draws(rng), f"procedural/{seed:016x}", pools, max_receptacles, max_objects)


def sample_scene(
    rng: np.random.Generator,
    *,
    task_types: Sequence[str] | None = None,
    max_receptacles: int | None = None,
    max_objects: int | None = None,
) -> Scene:
    """Unlimited train-layout tasks: draws a 63-bit seed from ``rng`` and calls :func:`procedural_scene`.

    The task id names the seed: ``procedural_scene(int(task_id.split("/")[1], 16))`` rebuilds the scene.
    """
    seed = int(rng.integers(0, 2**63))
    return procedural_scene(
        seed, task_types=task_types, max_receptacles=max_receptacles, max_objects=max_objects
    )
