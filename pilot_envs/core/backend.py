"""The interface between :class:`~pilot_envs.core.text_env.TextTaskEnv` and a world engine.

A backend owns the world state and knows its own rules. The env owns everything the contract adds:
parsing agent text, plans, reward modes, observation and info assembly. Native engines and adapters over
real engines (ScienceWorld, TextWorld) implement the same few methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilot_envs.core.task import Subgoal

__all__ = ["Backend", "TaskMeta", "Outcome"]


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources (processes, files)."""
