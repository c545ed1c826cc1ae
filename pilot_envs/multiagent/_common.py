"""Small pure helpers shared by the multi-agent envs: action text, reset options, tag blocks, plans."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gymnasium import logger

from pilot_envs.core.contract import MAX_ACTION_CHARS
from pilot_envs.core.contract import coerce_text as _as_text
from pilot_envs.core.spaces import COMMAND_MAX, sanitize

__all__ = [
    "RESET_OPTION_KEYS",
    "coerce_text",
    "check_actions",
    "warn_step_after_end",
    "forward_options",
    "cut_block",
    "clean_plan",
    "plan_action",
]

RESET_OPTION_KEYS: tuple[str, ...] = ("split", "task_index", "scene")
"""Reset options forwarded to the household task loader (the single-agent envs' keys)."""


def coerce_text(action: Any) -> str:
    """An action as text (:func:`pilot_envs.core.contract.coerce_text`: ``str``, ``bytes`` or a 1-element numpy
    string array; a ``TypeError`` for anything else), cut to the parser's limit."""
    return _as_text(action)[:MAX_ACTION_CHARS]


def check_actions(actions: Any, possible_agents: Sequence[str]) -> Mapping[str, Any]:
    """The ``actions`` of a Parallel ``step``: a mapping agent -> action whose keys are agents of the env.

    Raises ``TypeError`` for anything but a mapping (a bare action, a list) and ``ValueError`` for unknown keys.
    """
    if not isinstance(actions, Mapping):
        raise TypeError(
            "a Parallel env's step() takes a dict agent -> action (text), e.g. "
            f"{{{possible_agents[0]!r}: 'look'}}; got {type(actions).__name__}"
        )
    unknown = [a for a in actions if a not in possible_agents]
    if unknown:
        raise ValueError(f"actions for unknown agent(s) {unknown!r}; the agents are {list(possible_agents)}")
    return actions


def warn_step_after_end() -> None:
    """The warning of a step after every agent is done (a no-op that pays nothing)."""
    logger.warn(
        "step() called after every agent is terminated or truncated: nothing happens and no reward is paid. "
        "Call reset() to start a new episode."
    )


def forward_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The reset options the task loader understands; other keys are ignored with a warning.

    (PettingZoo's ``api_test`` resets with ``options={"options": 1}``, so unknown keys cannot raise.)
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(str(k) for k in options if k not in RESET_OPTION_KEYS)
    if unknown:
        logger.warn(f"ignoring unknown reset option(s) {unknown}; understood keys are {RESET_OPTION_KEYS}")
    return {k: v for k, v in options.items() if k in RESET_OPTION_KEYS}


def cut_block(text: str, tag: str) -> tuple[str, bool, str]:
    """Remove every ``<tag>..</tag>``, ``<tag/>`` and ``<tag />`` from ``text`` (case-insensitive).

    Each block becomes one space (as the protocol parser joins the text around tags), an unclosed ``<tag>``
    runs to the end of the text, and stray ``</tag>`` closers are removed too. Returns
    ``(the rest, whether the tag occurred, the content of the first block or "")``. Pure, linear in the text.
    """
    lower = text.lower()
    opening, self_closing = f"<{tag}>", (f"<{tag}/>", f"<{tag} />")
    closing = f"</{tag}>"
    out: list[str] = []
    pos, found, content = 0, False, None
    while True:
        hits = [(lower.find(mark, pos), mark) for mark in (opening, *self_closing)]
        hits = [(i, mark) for i, mark in hits if i >= 0]
        if not hits:
            out.append(text[pos:])
            break
        i, mark = min(hits)
        out.append(text[pos:i] + " ")
        found = True
        if mark != opening:
            pos = i + len(mark)
            content = "" if content is None else content
            continue
        start = i + len(opening)
        end = lower.find(closing, start)
        block_end = len(text) if end < 0 else end
        if content is None:
            content = text[start:block_end]
        pos = len(text) if end < 0 else end + len(closing)
    rest = "".join(out)
    if closing in rest.lower():
        rest = re.sub(re.escape(closing), " ", rest, flags=re.IGNORECASE)
    return rest, found, content or ""


def clean_plan(steps: Sequence[str], max_steps: int = 64) -> tuple[str, ...]:
    """Plan steps made safe for a ``TextList`` observation: charset, length, and no tag brackets."""
    cleaned = (sanitize(s.replace("<", " ").replace(">", " "), COMMAND_MAX).strip() for s in steps[:max_steps])
    return tuple(s for s in cleaned if s)


def plan_action(steps: Sequence[str]) -> str:
    """A plan-only action (``<plan>step\\nstep</plan>``) that the protocol parser reads back as ``steps``.

    Steps from :func:`pilot_envs.core.protocol.parse_plan` carry no newlines, so joining them with newlines
    round-trips; :func:`clean_plan` removes tag brackets so that no step can smuggle an ``<action>`` in.
    """
    return "<plan>" + "\n".join(clean_plan(steps)) + "</plan>"
