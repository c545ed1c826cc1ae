"""The ``planner`` prompt format: one answer, the global plan, with the places to search in order."""

from __future__ import annotations

from trainers.core.prompts import PromptFormat
from trainers.core.registry import FORMATS

__all__ = ["PLANNER"]

PLANNER = PromptFormat(
    name="planner",
    instruction=(
        "You are the planner. Another agent will carry out your plan literally, step by step, and has no other "
        "guide. Write a global plan for the whole task within <plan> </plan> tags as numbered steps, like "
        "<plan>Step 1: ... Step 2: ...</plan>. For each object to find, name the places to check, most likely "
        "first, like 'find a mug: check cabinet 1, countertop 2'."
    ),
    fields=("action",),
    field_templates={"action": "{}"},
)
"""The planner's whole answer is its plan; the expert answer is the env's oracle plan (``info["expert_action"]``
of the planner env: ``<plan>Step 1: .. </plan>``)."""

FORMATS.register(PLANNER.name)(PLANNER)
