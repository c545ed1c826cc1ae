"""ALFWorld task generator and fixed splits: determinism, validity, splits, caps, errors, catalog facts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_envs.alfworld import tasks
from pilot_envs.alfworld.catalog import (
    APPLIANCES,
    CAN_CONTAIN,
    GOAL_TEMPLATES,
    LAYOUTS,
    LAYOUTS_BY_NAME,
    OBJECT_CLASSES,
    RECEPTACLE_CLASSES,
    ROOM_TYPES,
    TASK_ROOM_TYPES,
    TASK_TARGETS,
    word,
)
from pilot_envs.alfworld.scene import TASK_TYPES, Scene
from pilot_envs.alfworld.tasks import (
    SPLIT_SIZES,
    SPLITS,
    TRAIN_LAYOUTS,
    UNSEEN_LAYOUTS,
    generate_scene,
    procedural_scene,
    sample_scene,
    split_scene,
    split_size,
    split_task_types,
)

PLACE_TYPES = tuple(t for t in TASK_TYPES if t != "look_at_obj_in_light")
NAME = re.compile(r"^([a-z]+) ([1-9][0-9]*)$")

# ------------------------------------------------------------------------------------------------- helpers


def _numbered(names_and_classes: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """(word, number) of each name, checking the name spells the class word."""
    out = []
    for name, cls in names_and_classes:
        m = NAME.match(name)
        assert m, name
        assert m.group(1) == word(cls), (name, cls)
        out.append((m.group(1), int(m.group(2))))
    return out


def _check_numbering(keys: list[tuple[str, int]]) -> None:
    assert keys == sorted(keys), "not sorted by (class word, number)"
    assert len(set(keys)) == len(keys), "duplicate names"
    per_class = Counter(w for w, _ in keys)
    for w, n in keys:
        assert 1 <= n <= per_class[w], f"{w} {n} is not numbered 1..{per_class[w]}"


def check_scene(scene: Scene) -> None:
    """Every invariant a generated scene promises (tasks.py module docstring)."""
    task = scene.task
    layout = LAYOUTS_BY_NAME[scene.layout]
    assert scene.room_type == layout.room_type in TASK_ROOM_TYPES[task.task_type]

    # receptacles: known classes of the layout, closed, named "<word> <n>" 1..k per class, sorted
    rec_cls = {r.name: r.cls for r in scene.receptacles}
    layout_counts = dict(layout.receptacles)
    for r in scene.receptacles:
        assert r.cls in layout_counts
        assert r.openable == RECEPTACLE_CLASSES[r.cls].openable
        assert not r.opened
    _check_numbering(_numbered([(r.name, r.cls) for r in scene.receptacles]))
    for cls, n in Counter(r.cls for r in scene.receptacles).items():
        assert n <= layout_counts[cls]

    # objects: classes of the layout, in a receptacle that can hold them, named and sorted likewise
    for o in scene.objects:
        assert o.cls in layout.objects
        assert o.location in rec_cls, f"{o.name} is in a missing receptacle {o.location!r}"
        assert o.cls in CAN_CONTAIN[rec_cls[o.location]], f"{o.name} cannot start in {o.location}"
    _check_numbering(_numbered([(o.name, o.cls) for o in scene.objects]))
    assert not set(rec_cls) & {o.name for o in scene.objects}

    # the task: valid parameters, every piece present, goal text from a template, goal not yet holding
    targets = [o for o in scene.objects if o.cls == task.obj_cls]
    assert len(targets) >= (2 if task.task_type == "pick_two_obj_and_place" else 1)
    assert task.obj_cls in TASK_TARGETS[task.task_type]
    assert OBJECT_CLASSES[task.obj_cls].pickupable
    if task.task_type == "look_at_obj_in_light":
        assert task.recep_cls is None
        assert task.lamp_cls in TASK_TARGETS[task.task_type][task.obj_cls]
        assert any(o.cls == task.lamp_cls for o in scene.objects)
        fill = {"obj": word(task.obj_cls), "lamp": word(task.lamp_cls)}
    else:
        assert task.lamp_cls is None
        assert task.recep_cls in TASK_TARGETS[task.task_type][task.obj_cls]
        assert task.recep_cls in rec_cls.values()
        assert all(rec_cls[o.location] != task.recep_cls for o in targets), "goal already satisfied"
        fill = {"obj": word(task.obj_cls), "recep": word(task.recep_cls)}
    appliance = APPLIANCES.get(task.task_type)
    assert appliance is None or appliance in rec_cls.values()
    assert task.goal in {template.format(**fill) for template in GOAL_TEMPLATES[task.task_type]}


def _layouts_of(split: str) -> tuple:
    return UNSEEN_LAYOUTS if split == "valid_unseen" else TRAIN_LAYOUTS


# --------------------------------------------------------------------------------------------- the splits


def test_split_sizes_and_type_mix() -> None:
    assert SPLIT_SIZES == {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
    assert Counter(split_task_types("train")) == Counter(tasks.ALFWORLD_TRAIN_MIX)
    for split in SPLITS:
        types = split_task_types(split)
        assert len(types) == SPLIT_SIZES[split] == split_size(split)
        assert set(types) == set(TASK_TYPES)
        assert sum(split_size(split, [t]) for t in TASK_TYPES) == SPLIT_SIZES[split]
        share = {t: n / len(types) for t, n in Counter(types).items()}
        for t, n in tasks.ALFWORLD_TRAIN_MIX.items():
            assert abs(share[t] - n / 3553) < 0.01


def test_split_types_are_interleaved() -> None:
    types = split_task_types("train")
    first = Counter(types[:100])
    assert all(abs(first[t] - 100 * n / 3553) <= 1 for t, n in tasks.ALFWORLD_TRAIN_MIX.items())


@pytest.mark.parametrize("split", SPLITS)
def test_every_split_task_is_valid(split: str) -> None:
    layouts = {lay.name for lay in _layouts_of(split)}
    types = split_task_types(split)
    ids = set()
    for i in range(SPLIT_SIZES[split]):
        scene = split_scene(split, i)
        check_scene(scene)
        assert scene.task_id == f"{split}/{i:05d}"
        assert scene.task.task_type == types[i]
        assert scene.layout in layouts
        ids.add(scene.task_id)
    assert len(ids) == SPLIT_SIZES[split]


def test_split_scene_is_deterministic() -> None:
    for split in SPLITS:
        for i in (0, 1, SPLIT_SIZES[split] - 1):
            assert split_scene(split, i) == split_scene(split, i)
            assert split_scene(split, np.int64(i)) == split_scene(split, i)


def test_split_scene_is_the_same_in_a_fresh_process() -> None:
    code = (
        "from pilot_envs.alfworld.tasks import split_scene\n"
        "print(repr([split_scene(s, i) for s, i in [('train', 7), ('valid_seen', 3), ('valid_unseen', 9)]]))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": str(root), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    here = [split_scene(s, i) for s, i in [("train", 7), ("valid_seen", 3), ("valid_unseen", 9)]]
    assert out.stdout.strip() == repr(here)


def test_splits_are_pinned() -> None:
    """The splits are fixed forever: a change to the generator that moves them must be deliberate."""
    pinned = {
        ("train", 0): ("FloorPlan407", "find two cloth and put them in garbagecan", 13, 17),
        ("valid_seen", 0): ("FloorPlan202", "find two laptop and put them in armchair", 6, 20),
        ("valid_unseen", 0): ("FloorPlan10", "put two dishsponge in sinkbasin", 20, 63),
    }
    for (split, i), expected in pinned.items():
        scene = split_scene(split, i)
        assert (scene.layout, scene.task.goal, len(scene.receptacles), len(scene.objects)) == expected


def test_unseen_layouts_are_held_out() -> None:
    train = {lay.name for lay in TRAIN_LAYOUTS}
    unseen = {lay.name for lay in UNSEEN_LAYOUTS}
    assert not train & unseen
    assert train | unseen == {lay.name for lay in LAYOUTS}
    assert len(LAYOUTS) == 120
    for room in ROOM_TYPES:
        assert sum(lay.room_type == room for lay in UNSEEN_LAYOUTS) >= 3
    for group in (TRAIN_LAYOUTS, UNSEEN_LAYOUTS):
        for t in TASK_TYPES:
            assert any(tasks.layout_supports(lay, t) for lay in group), t


@given(
    split=st.sampled_from(SPLITS),
    types=st.lists(st.sampled_from(TASK_TYPES), min_size=1, max_size=3, unique=True),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_type_filter_reindexes_the_same_tasks(split: str, types: list[str], data: st.DataObject) -> None:
    n = split_size(split, types)
    full = [i for i, t in enumerate(split_task_types(split)) if t in types]
    assert n == len(full)
    j = data.draw(st.integers(0, n - 1))
    scene = split_scene(split, j, task_types=types)
    assert scene.task.task_type in types
    assert scene == split_scene(split, full[j])


# ------------------------------------------------------------------------------------------------- errors


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="unknown split 'test'"):
        split_scene("test", 0)
    with pytest.raises(ValueError, match="unknown split"):
        split_size("valid")


@pytest.mark.parametrize("split", SPLITS)
def test_index_out_of_range_names_the_range(split: str) -> None:
    last = SPLIT_SIZES[split] - 1
    for bad in (-1, last + 1):
        with pytest.raises(ValueError, match=rf"valid range is 0\.\.{last}"):
            split_scene(split, bad)
    n = split_size(split, ["look_at_obj_in_light"])
    with pytest.raises(ValueError, match=rf"valid range is 0\.\.{n - 1}"):
        split_scene(split, n, task_types=["look_at_obj_in_light"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="task_types"):
        split_scene("train", 0, task_types=["pick_and_place"])
    with pytest.raises(ValueError, match="task_types"):
        split_scene("train", 0, task_types=[])
    with pytest.raises(ValueError, match="max_receptacles"):
        split_scene("train", 0, max_receptacles=2)
    with pytest.raises(ValueError, match="max_objects"):
        sample_scene(np.random.default_rng(0), max_objects=1)
    with pytest.raises(TypeError):
        split_scene("train", 1.5)  # type: ignore[arg-type]
    bathrooms = [lay for lay in LAYOUTS if lay.room_type == "bathroom"]
    with pytest.raises(ValueError, match="supports"):
        heat = ["pick_heat_then_place_in_recep"]
        generate_scene(np.random.default_rng(0), task_id="x", layouts=bathrooms, task_types=heat)


# ---------------------------------------------------------------------------------- procedural and small


@given(
    seed=st.integers(0, 2**63 - 1),
    types=st.none() | st.lists(st.sampled_from(TASK_TYPES), min_size=1, max_size=6, unique=True),
    max_receptacles=st.none() | st.integers(tasks.MIN_RECEPTACLES, 30),
    max_objects=st.none() | st.integers(tasks.MIN_OBJECTS, 40),
)
@settings(max_examples=300, deadline=None)
def test_procedural_scenes_are_valid_and_respect_caps(
    seed: int, types: list[str] | None, max_receptacles: int | None, max_objects: int | None
) -> None:
    scene = procedural_scene(seed, task_types=types, max_receptacles=max_receptacles, max_objects=max_objects)
    check_scene(scene)
    assert scene.layout in {lay.name for lay in TRAIN_LAYOUTS}
    assert types is None or scene.task.task_type in types
    if max_receptacles is not None:
        assert len(scene.receptacles) <= max_receptacles
    if max_objects is not None:
        assert len(scene.objects) <= max_objects
    full = procedural_scene(seed, task_types=types)
    assert scene.task == full.task and scene.layout == full.layout


@given(
    split=st.sampled_from(SPLITS),
    data=st.data(),
    max_receptacles=st.integers(tasks.MIN_RECEPTACLES, 8),
    max_objects=st.integers(tasks.MIN_OBJECTS, 8),
)
@settings(max_examples=100, deadline=None)
def test_small_split_scenes(split: str, data: st.DataObject, max_receptacles: int, max_objects: int) -> None:
    i = data.draw(st.integers(0, SPLIT_SIZES[split] - 1))
    scene = split_scene(split, i, max_receptacles=max_receptacles, max_objects=max_objects)
    check_scene(scene)
    assert len(scene.receptacles) <= max_receptacles
    assert len(scene.objects) <= max_objects
    assert scene.task == split_scene(split, i).task
    assert scene.task_id == f"{split}/{i:05d}"


def test_smallest_scenes_keep_the_task_pieces() -> None:
    for i in range(0, SPLIT_SIZES["train"], 7):
        scene = split_scene("train", i, max_receptacles=tasks.MIN_RECEPTACLES, max_objects=tasks.MIN_OBJECTS)
        check_scene(scene)


def test_sample_scene_uses_only_rng() -> None:
    a = [sample_scene(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(5)
    b = [sample_scene(rng) for _ in range(20)]
    assert len({s.task_id for s in b}) == 20
    for scene in b:
        check_scene(scene)
        assert scene.task_id.startswith("procedural/")
        assert procedural_scene(int(scene.task_id.split("/")[1], 16)) == scene


def test_generate_scene_with_given_layouts() -> None:
    kitchens = [lay for lay in LAYOUTS if lay.room_type == "kitchen"][:3]
    rng = np.random.default_rng(1)
    for _ in range(30):
        scene = generate_scene(rng, task_id="k", layouts=kitchens, task_types=TASK_TYPES)
        check_scene(scene)
        assert scene.layout in {lay.name for lay in kitchens}
        assert scene.task.task_type != "look_at_obj_in_light"  # kitchens have no lamps


# ------------------------------------------------------------------------------------------ catalog facts


def test_catalog_is_consistent() -> None:
    for t in TASK_TYPES:
        for obj, targets in TASK_TARGETS[t].items():
            assert OBJECT_CLASSES[obj].pickupable
            for target in targets:
                assert target in (RECEPTACLE_CLASSES if t in PLACE_TYPES else ("DeskLamp", "FloorLamp"))
                if t in PLACE_TYPES:
                    assert obj in CAN_CONTAIN[target]
            if t in APPLIANCES:
                assert APPLIANCES[t] not in targets
    assert all(OBJECT_CLASSES[o].cleanable for o in TASK_TARGETS["pick_clean_then_place_in_recep"])
    assert all(OBJECT_CLASSES[o].heatable for o in TASK_TARGETS["pick_heat_then_place_in_recep"])
    assert all(OBJECT_CLASSES[o].coolable for o in TASK_TARGETS["pick_cool_then_place_in_recep"])
    for lamp in ("DeskLamp", "FloorLamp"):
        assert OBJECT_CLASSES[lamp].toggleable and not OBJECT_CLASSES[lamp].pickupable
    assert set(CAN_CONTAIN) == set(RECEPTACLE_CLASSES)
    for layout in LAYOUTS:
        assert [w for w, _ in layout.receptacles] == sorted((w for w, _ in layout.receptacles), key=word)
        assert list(layout.objects) == sorted(layout.objects, key=word)
        assert all(n >= 1 for _, n in layout.receptacles)


def test_catalog_matches_alfworld() -> None:
    """Our tables against the facts alfworld ships (skipped when alfworld is not installed)."""
    constants = pytest.importorskip("alfworld.gen.constants")
    goal_library = pytest.importorskip("alfworld.gen.goal_library")
    movable = set(constants.MOVABLE_RECEPTACLES)
    val = constants.VAL_RECEPTACLE_OBJECTS
    lamps = {"DeskLamp", "FloorLamp"}
    for recep in RECEPTACLE_CLASSES:
        assert CAN_CONTAIN[recep] - lamps == {o for o in val[recep] if "Sliced" not in o}, recep
    assert set(RECEPTACLE_CLASSES) == set(val) - movable
    openable = {r for r, c in RECEPTACLE_CLASSES.items() if c.openable}
    assert openable == set(constants.OPENABLE_CLASS_LIST) - movable
    actions = constants.VAL_ACTION_OBJECTS
    flags = ("cleanable", "heatable", "coolable", "toggleable", "sliceable")
    for flag in flags:
        key = flag.capitalize()
        assert {o for o, c in OBJECT_CLASSES.items() if getattr(c, flag)} == {
            o for o in actions[key] if "Sliced" not in o
        }, flag
    for t in TASK_TYPES:
        expected = tuple(s.replace("{toggle}", "{lamp}") for s in goal_library.gdict[t]["templates"])
        assert GOAL_TEMPLATES[t] == expected
    layouts_dir = Path(constants.__file__).parent / "layouts"
    rename = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}
    for layout in LAYOUTS:
        listed = json.loads((layouts_dir / f"{layout.name}-objects.json").read_text())
        present = {rename.get(c, c) for c in listed}
        assert set(layout.objects) <= present
        assert {cls for cls, _ in layout.receptacles} <= present
