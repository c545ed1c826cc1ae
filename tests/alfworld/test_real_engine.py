"""Exported scenes are real ALFWorld games: the real engine plays them and a hand-written solution wins.

Skipped when alfworld (the real engine) is not installed.
"""

from __future__ import annotations

import json

import pytest

from pilot_envs.alfworld.export import entity_ids, export_game, scene_to_problem
from pilot_envs.alfworld.scene import ObjectSpec, ReceptacleSpec, Scene, TaskSpec

Rec, Obj = ReceptacleSpec, ObjectSpec

KITCHEN = (
    Rec("cabinet 1", "Cabinet", True), Rec("cabinet 2", "Cabinet", True, True), Rec("countertop 1", "CounterTop", False),
    Rec("diningtable 1", "DiningTable", False), Rec("fridge 1", "Fridge", True), Rec("microwave 1", "Microwave", True),
    Rec("sinkbasin 1", "SinkBasin", False), Rec("sidetable 1", "SideTable", False),
)
OBJECTS = (
    Obj("apple 1", "Apple", "countertop 1"), Obj("apple 2", "Apple", "fridge 1"), Obj("mug 1", "Mug", "cabinet 2"),
    Obj("mug 2", "Mug", "diningtable 1"), Obj("book 1", "Book", "sidetable 1"), Obj("desklamp 1", "DeskLamp", "sidetable 1"),
    Obj("potato 1", "Potato", "countertop 1"),
)


def _scene(task_type: str, obj: str, recep: str | None, goal: str, lamp: str | None = None) -> Scene:
    return Scene(f"test-{task_type}", "kitchen", "FloorPlan1", KITCHEN, OBJECTS, TaskSpec(task_type, obj, recep, lamp, goal))


CASES = {
    "pick_and_place_simple": (
        _scene("pick_and_place_simple", "Book", "DiningTable", "put some book on diningtable"),
        ["go to sidetable 1", "take book 1 from sidetable 1", "go to diningtable 1", "move book 1 to diningtable 1"],
    ),
    "look_at_obj_in_light": (
        _scene("look_at_obj_in_light", "Mug", None, "look at mug under the desklamp", lamp="DeskLamp"),
        ["go to diningtable 1", "take mug 2 from diningtable 1", "go to sidetable 1", "use desklamp 1"],
    ),
    "pick_clean_then_place_in_recep": (
        _scene("pick_clean_then_place_in_recep", "Mug", "Cabinet", "put a clean mug in cabinet"),
        ["go to diningtable 1", "take mug 2 from diningtable 1", "go to sinkbasin 1", "clean mug 2 with sinkbasin 1",
         "go to cabinet 1", "open cabinet 1", "move mug 2 to cabinet 1"],
    ),
    "pick_heat_then_place_in_recep": (
        _scene("pick_heat_then_place_in_recep", "Potato", "DiningTable", "heat some potato and put it in diningtable"),
        ["go to countertop 1", "take potato 1 from countertop 1", "go to microwave 1",
         "heat potato 1 with microwave 1", "go to diningtable 1", "move potato 1 to diningtable 1"],
    ),
    "pick_cool_then_place_in_recep": (
        _scene("pick_cool_then_place_in_recep", "Apple", "CounterTop", "put a cool apple in countertop"),
        ["go to fridge 1", "open fridge 1", "take apple 2 from fridge 1", "cool apple 2 with fridge 1",
         "go to countertop 1", "move apple 2 to countertop 1"],
    ),
    "pick_two_obj_and_place": (
        _scene("pick_two_obj_and_place", "Mug", "CounterTop", "put two mug in countertop"),
        ["go to cabinet 2", "take mug 1 from cabinet 2", "go to countertop 1", "move mug 1 to countertop 1",
         "go to diningtable 1", "take mug 2 from diningtable 1", "go to countertop 1",
         "move mug 2 to countertop 1"],
    ),
}


def test_ids_demangle_to_scene_names():
    scene = CASES["pick_two_obj_and_place"][0]
    ids = entity_ids(scene)
    assert ids["sinkbasin 1"].startswith("Sink_bar_") and ids["sinkbasin 1"].endswith("_bar_SinkBasin")
    # within a class, the id of the higher number sorts first (the demangler counts down)
    assert ids["mug 2"].lower() < ids["mug 1"].lower()
    assert "(:goal" in scene_to_problem(scene)


def test_bad_names_are_rejected():
    scene = CASES["pick_and_place_simple"][0]
    gap = Scene(scene.task_id, scene.room_type, scene.layout, scene.receptacles,
                (*scene.objects, Obj("book 3", "Book", "sidetable 1")), scene.task)
    with pytest.raises(ValueError):
        entity_ids(gap)


@pytest.mark.parametrize("task_type", sorted(CASES))
def test_real_engine_wins(task_type, tmp_path):
    pytest.importorskip("alfworld")
    pytest.importorskip("textworld")
    from pilot_envs.alfworld.real_engine import RealALFWorld

    scene, commands = CASES[task_type]
    path = export_game(scene, tmp_path / f"{task_type}.tw-pddl")
    game = json.loads(path.read_text())
    assert game["solvable"] is True and scene.task.goal + "." in game["grammar"]
    with RealALFWorld(path) as engine:
        text, admissible, won = engine.reset()
        assert text.startswith("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room.")
        assert text.endswith(f"Your task is to: {scene.task.goal}.")
        assert not won and admissible == sorted(admissible)
        for i, command in enumerate(commands):
            assert command in admissible, (command, admissible)
            text, admissible, won = engine.step(command)
            assert text != "Nothing happens.", command
            assert won == (i == len(commands) - 1), (command, text)
