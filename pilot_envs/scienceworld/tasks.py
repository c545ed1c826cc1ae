"""ScienceWorld's 30 tasks as data: names, variation counts, the train/dev/test variation split, simplifications.

Everything here is plain Python (no JVM), so an env can be configured, validated and pickled without starting
Java. :data:`NUM_VARIATIONS` is ScienceWorld 1.2.3's ``get_max_variations``; :func:`variations` reproduces its
``getVariationsTrain/Dev/Test`` rule (``PythonInterface.getSets``). Both are checked against the engine by
``tests/scienceworld/test_scienceworld_env.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "TASK_NAMES",
    "NUM_VARIATIONS",
    "SPLITS",
    "SIMPLIFICATIONS",
    "ELECTRICAL_TASKS",
    "resolve_tasks",
    "resolve_simplifications",
    "variations",
    "split_of",
]

#: variations per task, in ScienceWorld's task-id order (1-1 ... 10-2)
NUM_VARIATIONS: dict[str, int] = {
    "boil": 30,
    "melt": 30,
    "freeze": 30,
    "change-the-state-of-matter-of": 30,
    "use-thermometer": 540,
    "measure-melting-point-known-substance": 436,
    "measure-melting-point-unknown-substance": 300,
    "power-component": 20,
    "power-component-renewable-vs-nonrenewable-energy": 20,
    "test-conductivity": 900,
    "test-conductivity-of-unknown-substances": 600,
    "find-living-thing": 300,
    "find-non-living-thing": 300,
    "find-plant": 300,
    "find-animal": 300,
    "grow-plant": 126,
    "grow-fruit": 126,
    "chemistry-mix": 32,
    "chemistry-mix-paint-secondary-color": 36,
    "chemistry-mix-paint-tertiary-color": 36,
    "lifespan-longest-lived": 125,
    "lifespan-shortest-lived": 125,
    "lifespan-longest-lived-then-shortest-lived": 125,
    "identify-life-stages-1": 14,
    "identify-life-stages-2": 10,
    "inclined-plane-determine-angle": 168,
    "inclined-plane-friction-named-surfaces": 1386,
    "inclined-plane-friction-unnamed-surfaces": 162,
    "mendelian-genetics-known-plant": 120,
    "mendelian-genetics-unknown-plant": 480,
}
TASK_NAMES: tuple[str, ...] = tuple(NUM_VARIATIONS)
SPLITS: tuple[str, ...] = ("train", "dev", "test")
#: the engine's simplifications; ``"easy"`` is its preset of all of them (minus noElectricalAction on
#: electrical tasks)
SIMPLIFICATIONS: tuple[str, ...] = (
    "teleportAction",
    "selfWateringFlowerPots",
    "openContainers",
    "openDoors",
    "noElectricalAction",
)
ELECTRICAL_TASKS = frozenset(t for t in TASK_NAMES if "power-component" in t or "conductivity" in t)


def resolve_tasks(task: str | Sequence[str] | None) -> tuple[str, ...]:
    """Task names from a name (``"boil"``), an id (``"1-1"``), a paper title, a list of those, or None (all 30)."""
    from scienceworld.utils import infer_task  # pure Python (reads the package's tasks.json)

    if task is None:
        return TASK_NAMES
    items = [task] if isinstance(task, str) else list(task)
    if not items:
        raise ValueError("task must name at least one ScienceWorld task (or be None for all 30)")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"task names are strings, got {type(item).__name__}")
        name = infer_task(item.strip())
        if name not in NUM_VARIATIONS:
            raise ValueError(f"unknown ScienceWorld task {item!r}; choose from {TASK_NAMES} or ids 1-1 .. 10-2")
        if name not in out:
            out.append(name)
    return tuple(out)


def resolve_simplifications(simplifications: str | Sequence[str], tasks: Sequence[str]) -> str:
    """The engine's simplification string (``"easy"`` or comma-separated names) after validation."""
    items = simplifications.split(",") if isinstance(simplifications, str) else list(simplifications)
    items = [s.strip() for s in items if s and s.strip()]
    if items == ["easy"]:
        return "easy"
    unknown = [s for s in items if s not in SIMPLIFICATIONS]
    if unknown:
        raise ValueError(f"unknown simplification(s) {unknown}; choose from {SIMPLIFICATIONS} or 'easy' alone")
    if "noElectricalAction" in items and ELECTRICAL_TASKS & set(tasks):
        raise ValueError(
            f"noElectricalAction removes actions that {sorted(ELECTRICAL_TASKS & set(tasks))} need; "
            "use 'easy' (it keeps them for electrical tasks) or restrict `task`"
        )
    return ",".join(s for s in SIMPLIFICATIONS if s in items)


def variations(task: str, split: str) -> tuple[int, ...]:
    """The variation indices of ``split`` for ``task`` (ScienceWorld's 50/25/25 rule)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    n = NUM_VARIATIONS[task]
    small = {1: ((0,), (), (0,)), 2: ((0,), (), (1,)), 3: ((0,), (1,), (2,)), 4: ((0, 1), (2,), (3,))}
    if n in small:
        return small[n][SPLITS.index(split)]
    size = n // 4
    groups = [tuple(range(i, min(i + size, n))) for i in range(0, n, size)]
    train, dev, test = groups[0] + groups[1], groups[2], groups[3] + (groups[4] if len(groups) > 4 else ())
    return {"train": train, "dev": dev, "test": test}[split]


def split_of(task: str, variation: int) -> str:
    """The split a variation belongs to (``train`` first when a tiny task shares one between splits)."""
    for split in SPLITS:
        if variation in variations(task, split):
            return split
    raise ValueError(f"{task} has variations 0..{NUM_VARIATIONS[task] - 1}, not {variation}")
