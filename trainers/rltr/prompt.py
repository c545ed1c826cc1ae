"""The ``planner`` prompt format: one answer, the global plan, with the places to search in order."""

from __future__ import annotations

from collections.abc import Mapping

from pilot_envs.core.protocol import parse_action
from trainers.core.prompts import PromptFormat, format_plan
from trainers.core.registry import FORMATS

__all__ = ["PLANNER"]

def _oracle_plan(values: Mapping[str, str | None], *, turn_idx: int, previous: str | None) -> dict[str, str | None]:
    """The expert's plan: the steps of the env's oracle planner answer (``info["expert_action"]`` of the planner env,
    ``<plan>Step 1: .. </plan>``, naming where each object is)."""
    steps = parse_action(str(values.get("action") or "")).plan
    return {"plan": format_plan(steps) if steps else None}


PLANNER = PromptFormat(
    name="planner",
    instruction=(
        "You are the planner. Another agent will carry out your plan literally, step by step, and has no other "
        "guide. Write a global plan for the whole task within <plan> </plan> tags as numbered steps, like "
        "<plan>Step 1: ... Step 2: ...</plan>. For each object to find, name the places to check, most likely "
        "first, like 'find a mug: check cabinet 1, countertop 2'."
    ),
    fields=("plan",),
    field_templates={"plan": "<plan>{}</plan>"},
    expert=_oracle_plan,
)
"""The planner's whole answer is its plan; the expert's plan is the env's oracle planner answer."""

FORMATS.register(PLANNER.name)(PLANNER)
