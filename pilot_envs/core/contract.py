"""The env-trainer contract, written once: the info keys every step reports, the action limit, text coercion, and
the few things a trainer may ask of a text env beyond Gymnasium's API (:class:`TextEnv`).

A trainer uses this module and nothing else of an env (it never reaches into ``env.unwrapped.backend``), so a new
env that satisfies :class:`TextEnv` and reports :data:`INFO_KEYS` trains with every method unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = ["INFO_KEYS", "MAX_ACTION_CHARS", "PLAN_MODES", "TextEnv", "coerce_text", "text_env"]

MAX_ACTION_CHARS = 8192
"""The longest action text that is read: beyond it, input is ignored (an LLM that rambles past it is cut off);
the action space's ``max_length``."""

PLAN_MODES = ("none", "oracle", "agent")
"""What ``obs["plan"]`` holds: nothing, the oracle's global plan, or the agent's own declared plan."""

INFO_KEYS: Mapping[str, str] = {
    "won": "the task is solved",
    "lost": "the task can no longer be solved (the engine says so)",
    "progress": "fraction of the task's milestones reached (or the engine's own score / 100), 0..1",
    "subgoals": "the milestones, in order (text)",
    "subgoals_done": "which milestones are reached (0/1 per milestone)",
    "expert_action": "the oracle's next command (None when it has none)",
    "expert_plan": "the oracle's remaining commands",
    "action_valid": "the action did something (False: 'Nothing happens.' or the engine's equivalent)",
    "format_ok": "the agent's text was well formed (tags closed, one action)",
    "command": "the command that was executed ('' for thoughts, plans and unreadable text)",
    "plan_score": "how well the agent's declared plan covers and orders the milestones, 0..1",
    "plan_step": "index of the first step of the plan in effect that is not yet achieved",
    "plan_coverage": "which milestones the agent's declared plan covers in an order that can be executed (per milestone)",
    "state_hash": "a stable hash of the world state (equal states, equal hashes; GiGPO's anchor)",
    "task_type": "the task's type",
    "task_id": "the task's id (stable across processes)",
    "split": "the split the task comes from",
}
"""Every key of ``info`` that every text env reports at ``reset`` and at every ``step`` (the multi-agent envs
report them per agent), with its meaning."""


def coerce_text(action: Any) -> str:
    """An action as text: a ``str``, ``bytes`` (decoded as UTF-8, errors replaced) or a one-element numpy string
    array. Anything else is a ``TypeError`` that says what to pass instead."""
    if isinstance(action, str):
        return action
    if isinstance(action, bytes):
        return action.decode("utf-8", errors="replace")
    if isinstance(action, np.ndarray) and action.dtype.kind in "US" and action.size == 1:
        return str(action.item())
    raise TypeError(
        f"actions are text: pass a str (a command or an LLM response), got {type(action).__name__}. "
        "For integer actions over admissible commands use pilot_envs.wrappers.DiscreteCommands."
    )


@runtime_checkable
class TextEnv(Protocol):
    """What a trainer may ask of a text env (the unwrapped env), beyond Gymnasium's ``reset``/``step``.

    ``domain`` is a short description of the env's world for prompts ("a text-based embodied environment");
    ``noop_action`` an action that does nothing harmful (played by a finished slot of a vector env);
    ``plan_mode`` one of :data:`PLAN_MODES`, changed with :meth:`set_plan_mode` (takes effect at once);
    :meth:`splits` the fixed task splits and their sizes (``reset(options={"split": s, "task_index": i})``).
    """

    domain: str
    noop_action: str
    plan_mode: str

    def splits(self) -> dict[str, int]: ...

    def set_plan_mode(self, mode: str) -> None: ...


def text_env(env: gym.Env) -> TextEnv:
    """The :class:`TextEnv` under ``env``'s wrappers; a ``TypeError`` naming what is missing otherwise."""
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, TextEnv):
        missing = [n for n in ("domain", "noop_action", "plan_mode", "splits", "set_plan_mode") if not hasattr(base, n)]
        raise TypeError(f"{type(base).__name__} is not a pilot-envs text env (missing {missing}); the trainers need "
                        "the contract of pilot_envs.core.contract.TextEnv")
    return base
