"""Render env cards (docs/envs/*.md) from the env classes' docstrings, Gymnasium style, and rewrite the generated
blocks of other docs pages (:func:`write_marked`)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

from pilot_envs.core.files import atomic_write_text
from pilot_envs.registration import ENVS

__all__ = ["env_card", "write_env_cards", "write_marked", "CARD_SOURCES"]

#: extra documented classes that are not Gymnasium ids (PettingZoo envs, the planner's seat): (title, "module:attr")
CARD_SOURCES: tuple[tuple[str, str], ...] = (
    ("planner_executor_v0", "pilot_envs.multiagent.planner_executor:PlannerExecutorEnv"),
    ("household_coop_v0", "pilot_envs.multiagent.household_coop:HouseholdCoopEnv"),
    ("PlannerEnv", "pilot_envs.multiagent.planner_env:PlannerEnv"),
)


def _load(entry_point: str) -> type:
    module, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module), attr)


def env_card(title: str, cls: type, ids: list[str]) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "(no docstring)")
    head = f"# {title}\n\n"
    if ids:
        head += "Registered ids: " + ", ".join(f"`{i}`" for i in ids) + "\n\n"
    head += f"Source: `{cls.__module__}.{cls.__qualname__}` (this page is generated from its docstring by " \
            "`pilot-envs docs`; edit the docstring, not this file).\n\n"
    return head + doc + "\n"


def write_env_cards(out: Path) -> list[Path]:
    """Write one card per env class; returns the written paths. Classes whose engine is missing are skipped."""
    out.mkdir(parents=True, exist_ok=True)
    by_entry: dict[str, list[str]] = {}
    for e in ENVS:
        by_entry.setdefault(e.entry_point, []).append(e.id)
    written = []
    sources = [(ids[0], ep, ids) for ep, ids in by_entry.items()]
    sources += [(title, ep, []) for title, ep in CARD_SOURCES]
    for title, entry_point, ids in sources:
        try:
            cls = _load(entry_point)
        except ImportError:
            continue
        written.append(atomic_write_text(out / f"{title}.md", env_card(title, cls, ids)))
    return written


def write_marked(path: Path, start: str, end: str, body: str | Callable[[str], str], *, heading: str = "",
                 before: str | None = None) -> Path:
    """Rewrite what stands between the markers ``start`` and ``end`` of the Markdown file ``path`` to ``body`` (or
    ``body(the old text between them)``), atomically, keeping the rest of the file. ``body`` is written as it is
    (end it with a newline to put ``end`` on its own line). Without the markers the block is added: before the
    line ``before`` when the file has it, else at the end after ``heading``."""
    old = path.read_text() if path.exists() else ""
    i = old.find(start)
    j = old.find(end, i + len(start)) if i >= 0 else -1
    inside = old[i + len(start) : j].strip("\n") if j >= 0 else ""
    block = f"{start}\n{body(inside) if callable(body) else body}{end}"
    if j >= 0:
        new = old[:i] + block + old[j + len(end) :]
    elif before is not None and before in old:
        k = old.index(before)
        new = old[:k] + block + "\n\n" + old[k:]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + heading + block + "\n"
    return atomic_write_text(path, new)
