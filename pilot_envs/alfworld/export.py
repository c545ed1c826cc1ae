"""Write a :class:`~pilot_envs.alfworld.scene.Scene` as a real ALFWorld game (``*.tw-pddl``).

A game file is JSON: ``{"pddl_domain", "grammar", "pddl_problem", "solvable"}`` where the domain and the
grammar are ALFWorld's own ``alfred.pddl`` and ``alfred.twl2`` (the grammar with ``UNKNOWN GOAL`` replaced
by the goal sentence) and the problem is generated here. The real engine (TextWorld's PDDL env wrapped in
ALFWorld's ``AlfredDemangler``) then plays it with the same names as the native engine, because the ids are
chosen so that the demangler gives them back:

* ALFWorld lower-cases ids, takes the part before the first ``_bar_`` as the name (plus ``basin`` when the
  id contains ``basin``), sorts *all* ids as strings and numbers each name's ids from N down to 1 in that
  order. So ``cabinet n`` of N cabinets gets an id that sorts at place N - n within the cabinets:
  ``Cabinet_bar_{999 - n:03d}``. Basins keep ALFRED's shape (``Sink_bar_998_bar_SinkBasin``).
* Every receptacle stands at its own location; the agent starts at a location without receptacles.

Only :func:`export_game` touches alfworld (to read the domain and grammar files); :func:`scene_to_problem`
is pure.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pilot_envs.alfworld.scene import Scene
from pilot_envs.core.files import atomic_write_text

__all__ = ["entity_ids", "export_game", "game_json", "goal_pddl", "scene_to_problem"]

_MAX_INSTANCES = 999
_NAME = re.compile(r"^([a-z]+) ([1-9][0-9]*)$")
_START = "loc_bar_start"


def _prefix(cls: str) -> str:
    """Id prefix of a class: ALFRED spells basins ``Sink|...|SinkBasin``, ``Bathtub|...|BathtubBasin``."""
    return cls[: -len("Basin")] if cls.endswith("Basin") and len(cls) > len("Basin") else cls


def _make_id(cls: str, n: int) -> str:
    code = f"{_MAX_INSTANCES - n:03d}"  # larger n sorts first, which the demangler numbers highest
    if _prefix(cls) != cls:
        return f"{_prefix(cls)}_bar_{code}_bar_{cls}"
    return f"{cls}_bar_{code}"


def entity_ids(scene: Scene) -> dict[str, str]:
    """Map every receptacle and object name of ``scene`` to the PDDL id that demangles back to it.

    Raises ``ValueError`` when a name is not ``"<cls.lower()> <n>"`` or when the numbers of one class word
    are not exactly 1..N (the demangler can only produce contiguous numbers).
    """
    groups: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for name, cls in [(r.name, r.cls) for r in scene.receptacles] + [(o.name, o.cls) for o in scene.objects]:
        match = _NAME.match(name)
        if not match or match.group(1) != cls.lower():
            raise ValueError(f"name {name!r} does not match class {cls!r} (expected '{cls.lower()} <n>')")
        groups[match.group(1)].append((int(match.group(2)), name, cls))
    ids: dict[str, str] = {}
    for word, members in groups.items():
        numbers = sorted(n for n, _, _ in members)
        if numbers != list(range(1, len(numbers) + 1)) or len(numbers) > _MAX_INSTANCES:
            raise ValueError(f"{word!r} instances must be numbered 1..N without gaps, got {numbers}")
        for n, name, cls in members:
            ids[name] = _make_id(cls, n)
    return ids


def goal_pddl(task_type: str, obj_cls: str, recep_cls: str | None, lamp_cls: str | None) -> str:
    """The ``(:goal ...)`` of one of ALFWorld's six task types (as in ``alfworld/gen/goal_library.py``)."""
    o, r = f"{obj_cls}Type", f"{recep_cls}Type"
    placed = "(objectType ?o {o}) (receptacleType ?r {r}) {extra}(inReceptacle ?o ?r)"
    state = {
        "pick_and_place_simple": "",
        "pick_clean_then_place_in_recep": "(cleanable ?o) (isClean ?o) ",
        "pick_heat_then_place_in_recep": "(heatable ?o) (isHot ?o) ",
        "pick_cool_then_place_in_recep": "(coolable ?o) (isCool ?o) ",
    }
    if task_type in state:
        body = placed.format(o=o, r=r, extra=state[task_type])
        return f"(:goal (exists (?r - receptacle) (exists (?o - object) (and {body}))))"
    if task_type == "pick_two_obj_and_place":
        first = f"(objectType ?o1 {o}) (receptacleType ?r {r}) (inReceptacle ?o1 ?r)"
        second = f"(not (= ?o1 ?o2)) (objectType ?o2 {o}) (inReceptacle ?o2 ?r)"
        return (f"(:goal (exists (?r - receptacle) (exists (?o1 - object) (and {first} "
                f"(exists (?o2 - object) (and {second}))))))")
    if task_type == "look_at_obj_in_light":
        if lamp_cls is None:
            raise ValueError("look_at_obj_in_light needs lamp_cls")
        lamp = (f"(exists (?t - object ?r - receptacle ?a - agent ?l - location) (and "
                f"(objectType ?t {lamp_cls}Type) (toggleable ?t) (isToggled ?t) (receptacleAtLocation ?r ?l) "
                f"(atLocation ?a ?l) (inReceptacle ?t ?r)))")
        held = f"(exists (?o - object ?a - agent) (and (objectType ?o {o}) (holds ?a ?o)))"
        return f"(:goal (and {lamp} {held}))"
    raise ValueError(f"unknown task type {task_type!r}")


def _object_flags(cls: str) -> list[str]:
    from pilot_envs.alfworld.catalog import OBJECT_CLASSES  # lazy: the catalog is data-heavy

    info = OBJECT_CLASSES[cls]
    flags = ("pickupable", "cleanable", "heatable", "coolable", "toggleable", "sliceable")
    return [flag for flag in flags if getattr(info, flag)]


def _can_contain(recep_classes: Iterable[str], object_classes: Iterable[str]) -> list[tuple[str, str]]:
    from pilot_envs.alfworld.catalog import CAN_CONTAIN

    objects = sorted(set(object_classes))
    return [(r, o) for r in sorted(set(recep_classes)) for o in objects if o in CAN_CONTAIN.get(r, ())]


def scene_to_problem(scene: Scene) -> str:
    """The PDDL problem (for ALFWorld's ``alfred`` domain) of ``scene``: its initial state and goal."""
    ids = entity_ids(scene)
    task = scene.task
    loc = {r.name: f"loc_bar_{i + 1}" for i, r in enumerate(scene.receptacles)}
    recep_cls = {r.name: r.cls for r in scene.receptacles}
    otypes = sorted({o.cls for o in scene.objects} | {task.obj_cls} | ({task.lamp_cls} - {None}))
    rtypes = sorted({r.cls for r in scene.receptacles} | ({task.recep_cls} - {None}))

    declared = ["agent1 - agent", f"{_START} - location"]
    declared += [f"{loc[r.name]} - location" for r in scene.receptacles]
    declared += [f"{ids[r.name]} - receptacle" for r in scene.receptacles]
    declared += [f"{ids[o.name]} - object" for o in scene.objects]
    declared += [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]

    init = [f"(atLocation agent1 {_START})"]
    for r in scene.receptacles:
        rid = ids[r.name]
        init += [f"(receptacleType {rid} {r.cls}Type)", f"(receptacleAtLocation {rid} {loc[r.name]})"]
        if r.openable:
            init.append(f"(openable {rid})")
            if r.opened:
                init.append(f"(opened {rid})")
    for o in scene.objects:
        if o.location not in recep_cls:
            raise ValueError(f"{o.name!r} starts in unknown receptacle {o.location!r}")
        oid = ids[o.name]
        init += [f"(objectType {oid} {o.cls}Type)", f"(inReceptacle {oid} {ids[o.location]})",
                 f"(objectAtLocation {oid} {loc[o.location]})"]
        init += [f"({flag} {oid})" for flag in _object_flags(o.cls)]
    init += [f"(canContain {r}Type {o}Type)" for r, o in _can_contain(rtypes, otypes)]

    indent = "\n        "
    return (
        f"(define (problem {re.sub(r'[^A-Za-z0-9_]', '_', scene.task_id) or 'task'})\n"
        f"    (:domain alfred)\n"
        f"    (:objects{indent}{indent.join(declared)}\n    )\n"
        f"    (:init{indent}{indent.join(init)}\n    )\n"
        f"    {goal_pddl(task.task_type, task.obj_cls, task.recep_cls, task.lamp_cls)}\n"
        f")\n"
    )


def game_json(scene: Scene, domain: str, grammar: str) -> dict[str, object]:
    """The game as a dict, given ALFWorld's domain and grammar texts."""
    return {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", scene.task.goal),
        "pddl_problem": scene_to_problem(scene),
        "solvable": True,
    }


def export_game(scene: Scene, path: str | os.PathLike[str]) -> Path:
    """Write ``scene`` as an ALFWorld game file at ``path`` (atomically) and return the path.

    Needs the ``alfworld`` package for its ``alfred.pddl`` and ``alfred.twl2``.
    """
    try:
        from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("exporting ALFWorld games needs alfworld: pip install pilot-envs[alfworld]") from exc
    domain = Path(ALFRED_PDDL_PATH).read_text()
    grammar = Path(ALFRED_TWL2_PATH).read_text()
    return atomic_write_text(path, json.dumps(game_json(scene, domain, grammar)))
