"""The interface between :class:`~pilot_envs.core.text_env.TextTaskEnv` and a world engine.

A backend owns the world state and knows its own rules. The env owns everything the contract adds:
parsing agent text, plans, reward modes, observation and info assembly. Native engines and adapters over
real engines (ScienceWorld, TextWorld) implement the same few methods.
"""

from __future__ import annotations

import abc
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pilot_envs.core.files import atomic_write_text
from pilot_envs.core.snapshot import register_state_class
from pilot_envs.core.task import Subgoal

__all__ = ["Backend", "TaskMeta", "Outcome", "cache_dir", "int_option", "write_cache_file", "CACHE_ENV_VAR"]

CACHE_ENV_VAR = "PILOT_ENVS_CACHE_DIR"


@register_state_class
@dataclass(frozen=True)
class TaskMeta:
    """What a backend tells the env about the task it just loaded."""

    initial_text: str  # the first observation, exactly as the engine words it
    task: str  # the goal sentence
    subgoals: tuple[Subgoal, ...]
    oracle_plan: tuple[str, ...]  # natural-language global plan for plan_mode="oracle"
    task_type: str
    task_id: str
    split: str


@dataclass(frozen=True)
class Outcome:
    """The result of executing one command."""

    text: str
    valid: bool  # False when the command did nothing ("Nothing happens." or the engine's equivalent)
    won: bool = False
    lost: bool = False


class Backend(abc.ABC):
    """A world engine behind the env contract."""

    #: upper bound on the number of admissible commands (the observation space's ``TextList`` size)
    max_commands: int = 512
    #: upper bound on the number of subgoals of any task (``subgoals_done`` is padded to it)
    max_subgoals: int = 16
    #: a short description of the world for prompts (``TextEnv.domain``)
    domain: str = "a text-based environment"
    #: a command that changes nothing (``TextEnv.noop_action``)
    noop_action: str = "look"
    #: True when :meth:`snapshot`/:meth:`restore` copy the engine's state exactly; False: a snapshot of the env
    #: replays the episode's commands from the same ``load`` instead (checked with :meth:`state_hash`)
    exact_snapshots: bool = False

    @abc.abstractmethod
    def load(self, rng: np.random.Generator, options: dict[str, Any]) -> TaskMeta:
        """Set up a task (chosen by ``options`` or sampled from ``rng``) and return its description."""

    @abc.abstractmethod
    def execute(self, command: str) -> Outcome:
        """Execute a normalised command. Must not raise for any string."""

    @abc.abstractmethod
    def admissible_commands(self) -> tuple[str, ...]:
        """The commands that do something now, in a stable order."""

    @abc.abstractmethod
    def stage(self) -> int:
        """How many milestones (subgoals, in order) the current state has reached."""

    def progress(self) -> float | None:
        """Progress in [0, 1] when the engine measures it itself (e.g. a score); None: ``stage() / K``.

        Like ``stage()`` it must be a function of the current state: the env uses it as the shaping potential.
        """
        return None

    @abc.abstractmethod
    def expert_plan(self) -> tuple[str, ...]:
        """The remaining commands of an optimal (or engine-provided) solution from the current state."""

    @abc.abstractmethod
    def state_hash(self) -> str:
        """A hash of the world state, stable across processes and runs."""

    def splits(self) -> dict[str, int]:
        """The fixed task splits this backend offers and their sizes (empty when it has none)."""
        return {}

    def help_text(self) -> str | None:
        """Text answered to ``help``, or None when the engine answers ``help`` itself."""
        return None

    def snapshot(self) -> Any:
        """The engine's whole state as snapshot data (see :mod:`pilot_envs.core.snapshot`); only when
        ``exact_snapshots``."""
        raise NotImplementedError(f"{type(self).__name__} does not copy its state (exact_snapshots is False)")

    def restore(self, state: Any) -> None:
        """Make the engine's state the one :meth:`snapshot` returned (only when ``exact_snapshots``)."""
        raise NotImplementedError(f"{type(self).__name__} does not copy its state (exact_snapshots is False)")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources (processes, files)."""


def cache_dir(*parts: str, root: str | os.PathLike | None = None) -> Path:
    """The directory where backends keep what they generate (games, gold paths), created if missing.

    ``root`` if given, else ``$PILOT_ENVS_CACHE_DIR``, else ``$XDG_CACHE_HOME/pilot-envs`` (default
    ``~/.cache/pilot-envs``); ``parts`` are joined below it. Writers must make entries atomic (write to a temporary
    name in the same directory, then ``os.replace``) since several processes may share the cache.
    """
    if root is None:
        root = os.environ.get(CACHE_ENV_VAR) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pilot-envs"
    path = Path(root).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_cache_file(path: Path, text: str) -> None:
    """Write a cache entry so that concurrent readers see no file or the whole file (a temporary file in the same
    folder, then ``os.replace``). Best effort: a cache that cannot be written is skipped, never an error."""
    with contextlib.suppress(OSError):
        atomic_write_text(path, text)


def int_option(options: dict[str, Any], key: str) -> int | None:
    """``options[key]`` as an int (None when absent); a clear TypeError for anything else (bools included)."""
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"options[{key!r}] must be an int, got {type(value).__name__}")
    return int(value)
