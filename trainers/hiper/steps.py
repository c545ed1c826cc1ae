"""Task steps: the subgoals the SFT expert writes in the ``hiper`` format, coarser than the env's milestones.

The env's milestones (``info["subgoals"]``) include navigation milestones ("find a mug", "go to the sinkbasin")
that the oracle expert, which knows where everything is, reaches with a single ``go to``. Labelling every
milestone change ``SWITCH`` (the expert rule of :mod:`trainers.hiper.prompt`) therefore gives segments of one
turn (1.09 turns on average in full-size rooms, 1.16 in small ones; docs/trainers/hiper.md), and HAE has no
segment to span. A **task step** is a milestone that is not navigation together with the navigation milestones
before it: "find a mug" + "take the mug" is the step "take the mug"; "go to the sinkbasin" + "clean the mug
with the sinkbasin" is "clean the mug with the sinkbasin". The expert then keeps one subgoal over the go to,
open and take of a fetch (2-3 turns).

:class:`TaskStepInfo` rewrites ``info["subgoals"]`` / ``info["subgoals_done"]`` into task steps, so that the shared
SFT expert (which writes the first unreached entry of ``info["subgoals"]`` as the subgoal) labels task steps;
HiPER wraps its SFT env with it (``HiPERConfig.sft_segments="task_steps"``). Nothing else of the env changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["NAVIGATION_VERBS", "TaskStepInfo", "step_ends", "task_steps"]

NAVIGATION_VERBS: tuple[str, ...] = ("find", "go")
"""First words of the milestones that only move the agent; each belongs to the task step after it."""


def _navigates(milestone: str) -> bool:
    words = milestone.split()
    return bool(words) and words[0].casefold() in NAVIGATION_VERBS


def step_ends(milestones: Sequence[str]) -> list[int]:
    """Indices of the milestones that end a task step: every non-navigation milestone, and the last milestone."""
    n = len(milestones)
    return [i for i, m in enumerate(milestones) if not _navigates(m) or i == n - 1]


def task_steps(milestones: Sequence[str], done: Sequence[bool | int]) -> tuple[list[str], list[bool]]:
    """``(step texts, step done flags)`` from the milestones and their done flags: a step is named by the milestone
    that ends it, and is done when that milestone is (the env's milestones are reached in order)."""
    if len(done) < len(milestones):
        raise ValueError(f"{len(milestones)} milestones but {len(done)} done flags")
    ends = step_ends(milestones)
    return [str(milestones[i]) for i in ends], [bool(done[i]) for i in ends]


class TaskStepInfo(gym.Wrapper):
    """``info["subgoals"]`` and ``info["subgoals_done"]`` as task steps (:func:`task_steps`); all else unchanged."""

    def _steps(self, info: dict[str, Any]) -> dict[str, Any]:
        goals = [str(g) for g in info.get("subgoals", ()) or ()]
        if not goals:
            return info
        done = np.asarray(info.get("subgoals_done", ()), dtype=np.int64).tolist()
        done = done[: len(goals)] + [0] * (len(goals) - len(done))
        steps, flags = task_steps(goals, done)
        return {**info, "subgoals": steps, "subgoals_done": np.asarray(flags, dtype=np.int8)}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, self._steps(info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, self._steps(info)
