"""Facts about ALFWorld's household rooms, as data: room types, classes, placement rules, floor plans, goals.

Everything here was learned from the ``alfworld`` 0.4.2 package (``alfworld/gen/constants.py``,
``alfworld/gen/goal_library.py``, ``alfworld/gen/layouts/FloorPlan*-{objects,openable}.json``) and from
ALFRED's task generator (``gen/scripts/generate_trajectories.py``); the tables are our own.

* :data:`RECEPTACLE_CLASSES` - the static receptacles a text game lists (``cabinet 1``, ``sinkbasin 1``):
  ALFRED's receptacle classes minus the movable ones (Bowl, Box, Cup, Mug, Pan, Plate, Pot), which are
  ordinary objects in ALFWorld. Openable: Cabinet, Drawer, Fridge, Microwave, Safe.
* :data:`OBJECT_CLASSES` - every class ALFRED lets a receptacle hold (sliced variants dropped: ALFWorld's
  six task types never slice), plus the two lamps, which are toggleable and not pickupable.
* :data:`CAN_CONTAIN` - ALFRED's receptacle -> object placement table (``VAL_RECEPTACLE_OBJECTS``), plus
  :data:`LAMP_HOSTS`: our convention for where a lamp stands. ALFWorld's PDDL only lets the agent use a
  lamp that is ``inReceptacle`` the receptacle it stands at, so every lamp starts on a piece of furniture.
* :data:`LAYOUTS` - the 120 floor plans, loaded once from ``data/layouts.json``. That file was derived
  once from alfworld's layouts: a receptacle class is present when ``FloorPlanN-objects.json`` lists it
  (``Sink`` -> SinkBasin, ``Bathtub`` -> BathtubBasin); its count is the number of instances in
  ``FloorPlanN-openable.json`` (the navigable receptacles, e.g. 8 cabinets in FloorPlan1), else 1, except
  StoveBurner: ``(4, 4, 4, 2)[zlib.crc32(name) % 4]``. Object classes are those the floor plan lists; at
  import we keep the ones some receptacle of the layout can hold.
* :data:`TASK_TARGETS` - ALFRED's generator constraints per task type (see :func:`_task_targets`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pilot_envs.alfworld.scene import TASK_TYPES

__all__ = [
    "ROOM_TYPES", "ReceptacleClass", "RECEPTACLE_CLASSES", "ObjectClass", "OBJECT_CLASSES", "LAMP_CLASSES",
    "LAMP_HOSTS", "CAN_CONTAIN", "Layout", "LAYOUTS", "LAYOUTS_BY_NAME", "TASK_ROOM_TYPES", "APPLIANCES",
    "TASK_TARGETS", "GOAL_TEMPLATES", "word",
]

ROOM_TYPES: tuple[str, ...] = ("kitchen", "livingroom", "bedroom", "bathroom")


def word(cls: str) -> str:
    """The word players type for a class: ``word("CounterTop") == "countertop"``."""
    return cls.lower()


# ---------------------------------------------------------------------------------------------- receptacles


@dataclass(frozen=True)
class ReceptacleClass:
    """A static receptacle class, e.g. ``ReceptacleClass("Fridge", openable=True)``."""

    cls: str
    openable: bool


_OPENABLE: frozenset[str] = frozenset({"Cabinet", "Drawer", "Fridge", "Microwave", "Safe"})
_RECEPTACLE_NAMES: tuple[str, ...] = (
    "ArmChair", "BathtubBasin", "Bed", "Cabinet", "Cart", "CoffeeMachine", "CoffeeTable", "CounterTop",
    "Desk", "DiningTable", "Drawer", "Dresser", "Fridge", "GarbageCan", "HandTowelHolder", "LaundryHamper",
    "Microwave", "Ottoman", "Safe", "Shelf", "SideTable", "SinkBasin", "Sofa", "StoveBurner", "Toaster",
    "Toilet", "ToiletPaperHanger", "TowelHolder", "TVStand",
)
RECEPTACLE_CLASSES: dict[str, ReceptacleClass] = {
    name: ReceptacleClass(name, name in _OPENABLE) for name in _RECEPTACLE_NAMES
}

# ------------------------------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectClass:
    """An object class and its affordances (ALFRED's ``VAL_ACTION_OBJECTS``)."""

    cls: str
    pickupable: bool
    cleanable: bool
    heatable: bool
    coolable: bool
    toggleable: bool
    sliceable: bool


LAMP_CLASSES: tuple[str, ...] = ("DeskLamp", "FloorLamp")
_PICKUPABLE: tuple[str, ...] = (
    "AlarmClock", "Apple", "BaseballBat", "BasketBall", "Book", "Bowl", "Box", "Bread", "ButterKnife",
    "Candle", "CD", "CellPhone", "Cloth", "CreditCard", "Cup", "DishSponge", "Egg", "Fork", "Glassbottle",
    "HandTowel", "Kettle", "KeyChain", "Knife", "Ladle", "Laptop", "Lettuce", "Mug", "Newspaper", "Pan",
    "PaperTowel", "Pen", "Pencil", "PepperShaker", "Pillow", "Plate", "Plunger", "Pot", "Potato",
    "RemoteControl", "SaltShaker", "SoapBar", "SoapBottle", "Spatula", "Spoon", "SprayBottle", "Statue",
    "TennisRacket", "TissueBox", "ToiletPaper", "ToiletPaperRoll", "Tomato", "Towel", "Vase", "Watch",
    "WateringCan", "WineBottle",
)
_CLEANABLE: frozenset[str] = frozenset({
    "Apple", "Bowl", "ButterKnife", "Cloth", "Cup", "DishSponge", "Egg", "Fork", "Kettle", "Knife", "Ladle",
    "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "SoapBar", "Spatula", "Spoon", "Tomato",
})
_HEATABLE: frozenset[str] = frozenset({"Apple", "Bread", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato"})
_COOLABLE: frozenset[str] = frozenset({
    "Apple", "Bowl", "Bread", "Cup", "Egg", "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "Tomato",
    "WineBottle",
})
_SLICEABLE: frozenset[str] = frozenset({"Apple", "Bread", "Egg", "Lettuce", "Potato", "Tomato"})


def _object_class(cls: str) -> ObjectClass:
    lamp = cls in LAMP_CLASSES
    return ObjectClass(
        cls, pickupable=not lamp, cleanable=cls in _CLEANABLE, heatable=cls in _HEATABLE,
        coolable=cls in _COOLABLE, toggleable=lamp, sliceable=cls in _SLICEABLE,
    )


OBJECT_CLASSES: dict[str, ObjectClass] = {cls: _object_class(cls) for cls in (*_PICKUPABLE, *LAMP_CLASSES)}

# ---------------------------------------------------------------------------------------- placement rules

_TABLE_TOP: frozenset[str] = frozenset({
    "AlarmClock", "Apple", "BaseballBat", "BasketBall", "Book", "Bowl", "Box", "Bread", "ButterKnife",
    "Candle", "CD", "CellPhone", "Cloth", "CreditCard", "Cup", "DishSponge", "Egg", "Fork", "Glassbottle",
    "HandTowel", "Kettle", "KeyChain", "Knife", "Ladle", "Laptop", "Lettuce", "Mug", "Newspaper", "Pan",
    "PaperTowel", "Pen", "Pencil", "PepperShaker", "Plate", "Pot", "Potato", "RemoteControl",
    "SaltShaker", "SoapBar", "SoapBottle", "Spatula", "Spoon", "SprayBottle", "Statue", "TennisRacket",
    "TissueBox", "ToiletPaper", "ToiletPaperRoll", "Tomato", "Vase", "Watch", "WateringCan", "WineBottle",
})
_SEAT: frozenset[str] = frozenset({
    "BasketBall", "Book", "Box", "CellPhone", "Cloth", "CreditCard", "KeyChain", "Laptop", "Newspaper",
    "Pillow", "RemoteControl",
})
_ALFRED_CAN_CONTAIN: dict[str, frozenset[str]] = {
    "ArmChair": _SEAT,
    "BathtubBasin": frozenset({"Cloth", "DishSponge", "HandTowel", "SoapBar"}),
    "Bed": frozenset({
        "BaseballBat", "BasketBall", "Book", "CellPhone", "Laptop", "Newspaper", "Pillow",
        "TennisRacket",
    }),
    "Cabinet": frozenset({
        "Book", "Bowl", "Box", "Candle", "CD", "Cloth", "Cup", "DishSponge", "Glassbottle",
        "HandTowel", "Kettle", "Ladle", "Mug", "Newspaper", "Pan", "PepperShaker", "Plate", "Plunger",
        "Pot", "SaltShaker", "SoapBar", "SoapBottle", "SprayBottle", "TissueBox", "ToiletPaper",
        "ToiletPaperRoll", "Vase", "WateringCan", "WineBottle",
    }),
    "Cart": frozenset({
        "Candle", "Cloth", "DishSponge", "HandTowel", "Mug", "PaperTowel", "Plunger", "SoapBar",
        "SoapBottle", "SprayBottle", "Statue", "TissueBox", "ToiletPaper", "ToiletPaperRoll", "Vase",
    }),
    "CoffeeMachine": frozenset({"Mug"}),
    "CoffeeTable": _TABLE_TOP,
    "CounterTop": _TABLE_TOP,
    "Desk": frozenset({
        "AlarmClock", "BasketBall", "Book", "Bowl", "Box", "Candle", "CD", "CellPhone", "Cloth",
        "CreditCard", "Cup", "Glassbottle", "KeyChain", "Laptop", "Mug", "Newspaper", "Pen", "Pencil",
        "Plate", "RemoteControl", "SoapBottle", "SprayBottle", "Statue", "TennisRacket", "TissueBox",
        "ToiletPaper", "ToiletPaperRoll", "Vase", "Watch", "WateringCan", "WineBottle",
    }),
    "DiningTable": _TABLE_TOP,
    "Drawer": frozenset({
        "Book", "ButterKnife", "Candle", "CD", "CellPhone", "Cloth", "CreditCard", "DishSponge",
        "Fork", "HandTowel", "KeyChain", "Knife", "Ladle", "Newspaper", "Pen", "Pencil",
        "PepperShaker", "RemoteControl", "SaltShaker", "SoapBar", "SoapBottle", "Spatula", "Spoon",
        "SprayBottle", "TissueBox", "ToiletPaper", "ToiletPaperRoll", "Watch", "WateringCan",
    }),
    "Dresser": frozenset({
        "AlarmClock", "BasketBall", "Book", "Bowl", "Box", "Candle", "CD", "CellPhone", "Cloth",
        "CreditCard", "Cup", "Glassbottle", "KeyChain", "Laptop", "Mug", "Newspaper", "Pen", "Pencil",
        "Plate", "RemoteControl", "SprayBottle", "Statue", "TennisRacket", "TissueBox", "ToiletPaper",
        "ToiletPaperRoll", "Vase", "Watch", "WateringCan", "WineBottle",
    }),
    "Fridge": frozenset({
        "Apple", "Bowl", "Bread", "Cup", "Egg", "Glassbottle", "Lettuce", "Mug", "Pan", "Plate",
        "Pot", "Potato", "Tomato", "WineBottle",
    }),
    "GarbageCan": frozenset({
        "Apple", "Bread", "CD", "Cloth", "DishSponge", "Egg", "HandTowel", "Lettuce", "Newspaper",
        "PaperTowel", "Pen", "Pencil", "Potato", "SoapBar", "SoapBottle", "SprayBottle", "TissueBox",
        "ToiletPaper", "ToiletPaperRoll", "Tomato", "WineBottle",
    }),
    "HandTowelHolder": frozenset({"HandTowel"}),
    "LaundryHamper": frozenset({"Cloth"}),
    "Microwave": frozenset({
        "Apple", "Bowl", "Bread", "Cup", "Egg", "Glassbottle", "Mug", "Plate", "Potato", "Tomato",
    }),
    "Ottoman": _SEAT,
    "Safe": frozenset({"CD", "CellPhone", "CreditCard", "KeyChain", "Statue", "Vase", "Watch"}),
    "Shelf": frozenset({
        "AlarmClock", "Book", "Bowl", "Box", "Candle", "CD", "CellPhone", "Cloth", "CreditCard",
        "Cup", "DishSponge", "Glassbottle", "HandTowel", "Kettle", "KeyChain", "Mug", "Newspaper",
        "PaperTowel", "Pen", "Pencil", "PepperShaker", "Plate", "Pot", "RemoteControl", "SaltShaker",
        "SoapBar", "SoapBottle", "SprayBottle", "Statue", "TissueBox", "ToiletPaper",
        "ToiletPaperRoll", "Vase", "Watch", "WateringCan", "WineBottle",
    }),
    "SideTable": _TABLE_TOP,
    "SinkBasin": frozenset({
        "Apple", "Bowl", "ButterKnife", "Cloth", "Cup", "DishSponge", "Egg", "Fork", "Glassbottle",
        "HandTowel", "Kettle", "Knife", "Ladle", "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato",
        "SoapBar", "Spatula", "Spoon", "Tomato",
    }),
    "Sofa": _SEAT,
    "StoveBurner": frozenset({"Kettle", "Pan", "Pot"}),
    "Toaster": frozenset(),
    "Toilet": frozenset({
        "Candle", "Cloth", "DishSponge", "HandTowel", "Newspaper", "PaperTowel", "SoapBar",
        "SoapBottle", "SprayBottle", "TissueBox", "ToiletPaper", "ToiletPaperRoll",
    }),
    "ToiletPaperHanger": frozenset({"ToiletPaper", "ToiletPaperRoll"}),
    "TowelHolder": frozenset({"Towel"}),
    "TVStand": frozenset({"TissueBox"}),
}

LAMP_HOSTS: dict[str, frozenset[str]] = {
    "DeskLamp": frozenset({"CoffeeTable", "Desk", "DiningTable", "Dresser", "Shelf", "SideTable"}),
    "FloorLamp": frozenset({
        "ArmChair", "Bed", "CoffeeTable", "Desk", "DiningTable", "Dresser", "Shelf", "SideTable", "Sofa",
        "TVStand",
    }),
}
"""Where a lamp may stand (our convention; ALFRED's placement table has no lamps)."""


def _can_contain() -> dict[str, frozenset[str]]:
    table = {}
    for recep, objects in _ALFRED_CAN_CONTAIN.items():
        lamps = {lamp for lamp, hosts in LAMP_HOSTS.items() if recep in hosts}
        table[recep] = objects | lamps
    return table


CAN_CONTAIN: dict[str, frozenset[str]] = _can_contain()
"""Receptacle class -> object classes that can start in it (and that ``move`` may put there)."""

# ------------------------------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """One ALFRED floor plan: which receptacles (class, count) and object classes the room has."""

    name: str  # "FloorPlan12"
    room_type: str  # one of ROOM_TYPES
    receptacles: tuple[tuple[str, int], ...]  # (class, count), sorted by class word
    objects: tuple[str, ...]  # object classes present that some receptacle here can hold, sorted by word


_LAYOUTS_PATH = Path(__file__).with_name("data") / "layouts.json"


def _load_layouts(path: Path) -> tuple[Layout, ...]:
    with path.open(encoding="utf-8") as f:
        raw = json.load(f)
    layouts = []
    for name, entry in raw.items():
        receptacles = tuple((str(cls), int(n)) for cls, n in entry["receptacles"])
        present = {cls for cls, _ in receptacles}
        objects = tuple(o for o in entry["objects"] if any(o in CAN_CONTAIN[r] for r in present))
        layouts.append(Layout(name, entry["room_type"], receptacles, objects))
    return tuple(layouts)


LAYOUTS: tuple[Layout, ...] = _load_layouts(_LAYOUTS_PATH)
"""All 120 floor plans: kitchens 1-30, living rooms 201-230, bedrooms 301-330, bathrooms 401-430."""

LAYOUTS_BY_NAME: dict[str, Layout] = {layout.name: layout for layout in LAYOUTS}

# --------------------------------------------------------------------------------------------------- tasks

TASK_ROOM_TYPES: dict[str, frozenset[str]] = {
    "pick_and_place_simple": frozenset(ROOM_TYPES),
    "look_at_obj_in_light": frozenset({"livingroom", "bedroom"}),
    "pick_clean_then_place_in_recep": frozenset({"kitchen", "bathroom"}),
    "pick_heat_then_place_in_recep": frozenset({"kitchen"}),
    "pick_cool_then_place_in_recep": frozenset({"kitchen"}),
    "pick_two_obj_and_place": frozenset(ROOM_TYPES),
}
"""Room types in which ALFRED generates each task type (``GOALS_VALID``)."""

APPLIANCES: dict[str, str] = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
"""The receptacle a state-change task needs (clean with a sinkbasin, heat with a microwave, ...)."""

_NEVER_TARGETS: frozenset[str] = frozenset({"Toaster"})  # ALFRED drops it ("not interesting")
_EXCLUDED_TARGETS: dict[str, frozenset[str]] = {
    "pick_clean_then_place_in_recep": frozenset({"SinkBasin"}),
    "pick_heat_then_place_in_recep": frozenset({"Microwave"}),
    "pick_cool_then_place_in_recep": frozenset({"Fridge"}),
    "pick_two_obj_and_place": frozenset({"CoffeeMachine", "ToiletPaperHanger", "HandTowelHolder"}),
}
_OBJECT_FILTER = {
    "pick_clean_then_place_in_recep": lambda o: o.cleanable,
    "pick_heat_then_place_in_recep": lambda o: o.heatable,
    "pick_cool_then_place_in_recep": lambda o: o.coolable,
}


def _task_targets(task_type: str) -> dict[str, frozenset[str]]:
    """Valid object class -> target classes for one task type, following ALFRED's generator.

    Place tasks: the object must be pickupable, the receptacle must be allowed to hold it
    (:data:`CAN_CONTAIN`), the Toaster is never a target, the appliance of a clean/heat/cool task is not its
    target, pick_two never targets CoffeeMachine/ToiletPaperHanger/HandTowelHolder, and clean/heat/cool
    objects must be cleanable/heatable/coolable. Light tasks: any pickupable object -> both lamp classes.
    """
    pickupable = [o for o in OBJECT_CLASSES.values() if o.pickupable]
    if task_type == "look_at_obj_in_light":
        return {o.cls: frozenset(LAMP_CLASSES) for o in pickupable}
    keep = _OBJECT_FILTER.get(task_type, lambda o: True)
    excluded = _NEVER_TARGETS | _EXCLUDED_TARGETS.get(task_type, frozenset())
    targets = {}
    for obj in filter(keep, pickupable):
        receps = frozenset(
            r for r, objs in _ALFRED_CAN_CONTAIN.items() if obj.cls in objs and r not in excluded
        )
        if receps:
            targets[obj.cls] = receps
    return targets


TASK_TARGETS: dict[str, dict[str, frozenset[str]]] = {t: _task_targets(t) for t in TASK_TYPES}
"""Task type -> target object class -> target receptacle classes (lamp classes for light tasks)."""

GOAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "look_at_obj_in_light": ("look at {obj} under the {lamp}", "examine the {obj} with the {lamp}"),
    "pick_clean_then_place_in_recep": (
        "put a clean {obj} in {recep}", "clean some {obj} and put it in {recep}",
    ),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"),
    "pick_two_obj_and_place": ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
}
"""ALFWorld's goal templates (``goal_library.py``); fill with ``word()`` of the classes."""
