"""ALFWorld's feedback text (``alfred.twl2``), as small pure functions.

Every sentence the native engine says is built here, so that matching the real engine's wording is a
one-file concern. ``legacy`` variants are the pre-0.4 wording used by the ReAct/Reflexion prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

WELCOME = "-= Welcome to TextWorld, ALFRED! =-"
NOTHING = "Nothing happens."


def join(names: Sequence[str]) -> str:
    """``a x``, ``a x, and a y``, ``a x, a y, and a z``; ``nothing`` when empty."""
    items = [f"a {n}" for n in names]
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def sort_key(name: str) -> tuple[str, int]:
    """The real engine lists things by class word A-Z, then number high to low ("cabinet 2, cabinet 1")."""
    word, _, number = name.rpartition(" ")
    return (word, -int(number)) if number.isdigit() else (name, 0)


def order_objects(names: Iterable[str]) -> list[str]:
    """Order of objects in a receptacle view (not the order they arrived in)."""
    return sorted(names, key=sort_key)


def order_receptacles(names: Iterable[str]) -> list[str]:
    """Order of receptacles in the room description."""
    return sorted(names, key=sort_key)


def order_commands(commands: Iterable[str]) -> tuple[str, ...]:
    """Order of admissible commands."""
    return tuple(sorted(set(commands)))


def room(receptacles: Sequence[str]) -> str:
    return (
        "You are in the middle of a room. Looking quickly around you, you see "
        f"{join(order_receptacles(receptacles))}."
    )


def intro(room_text: str, goal: str) -> str:
    return f"{WELCOME}\n\n{room_text}\n\nYour task is to: {goal}."


def arrive(rec: str) -> str:
    return f"You arrive at {rec}. "


def arrive_legacy(loc: int) -> str:
    return f"You arrive at loc {loc}. "


def open_view(rec: str, objects: Sequence[str]) -> str:
    return f"The {rec} is open. In it, you see {join(objects)}."


def closed_view(rec: str) -> str:
    return f"The {rec} is closed."


def surface_view(rec: str, objects: Sequence[str]) -> str:
    return f"On the {rec}, you see {join(objects)}."


def opened(rec: str) -> str:
    return f"You open the {rec}. "


def closed(rec: str) -> str:
    return f"You close the {rec}."


def picked(obj: str, rec: str) -> str:
    return f"You pick up the {obj} from the {rec}."


def moved(obj: str, rec: str) -> str:
    return f"You move the {obj} to the {rec}."


def put_legacy(obj: str, rec: str) -> str:
    return f"You put the {obj} in/on the {rec}."


def processed(verb: str, obj: str, rec: str) -> str:
    return f"You {verb} the {obj} using the {rec}."


def turned_on(obj: str) -> str:
    return f"You turn on the {obj}."


def sliced(obj: str, knife: str) -> str:
    return f"You sliced the {obj} with the {knife}."


def inventory(holding: str | None) -> str:
    return f"You are carrying: a {holding}." if holding else "You are not carrying anything."


def look_middle() -> str:
    # the real engine lists what is at the agent's location, and the middle of the room has nothing
    return "You are in the middle of a room. Looking quickly around you, you see nothing."


def look_at(rec: str) -> str:
    return f"You are facing the {rec}. Next to it, you see nothing."


def examine_object(
    obj: str, *, clean: bool, hot: bool, cool: bool, sliced: bool, toggleable: bool, toggled: bool, sliceable: bool
) -> str:
    """The first matching rule of ``examineObject.feedback``."""
    rules = (
        (clean and hot and sliced, f"This is a hot and clean sliced {obj}."),
        (clean and cool and sliced, f"This is a cool and clean sliced {obj}."),
        (clean and sliced, f"This is a clean sliced {obj}."),
        (hot and sliced, f"This is a hot sliced {obj}."),
        (cool and sliced, f"This is a cool sliced {obj}."),
        (clean and hot, f"This is a hot and clean {obj}."),
        (clean and cool, f"This is a cool and clean {obj}."),
        (hot, f"This is a hot {obj}."),
        (clean, f"This is a clean {obj}."),
        (cool, f"This is a cold {obj}."),
        (toggleable and toggled, f"This {obj} is on."),
        (toggleable, f"This {obj} is off."),
        (sliceable and sliced, f"This is a sliced {obj}."),
    )
    for cond, sentence in rules:
        if cond:
            return sentence
    return f"There's nothing special about {obj}."


HELP = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)
