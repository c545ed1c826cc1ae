"""Agent prompt formats: pure functions from env observations to chat messages.

A *format* fixes how the prompt asks the model to answer and how an expert answer looks. Formats are data
(:class:`PromptFormat`), registered by name in :data:`trainers.core.registry.FORMATS`. The generic ones live
here; a method that brings its own registers it from its package (e.g. ``trainers/hiper/prompt.py``):

- ``think_action``: verl-agent's ALFWorld prompt; answer ``<think>..</think><action>..</action>``.
- ``react``: ReAct; answer ``Thought: ..`` then ``Action: ..``.
- ``adaplan``: AdaPlan (plan, then act); while no plan is in effect the model first writes a global plan
  ``<plan>Step 1: .. Step 2: ..</plan>``, then ``<think>..</think><action>..</action>``; later prompts show
  the plan in effect and allow replacing its remaining steps with a new ``<plan>``.

Answer parts are the env protocol's tags (``pilot_envs.core.protocol``). A format may *carry* one part
(:attr:`PromptFormat.carry`): the latest value the agent wrote there is shown in later prompts.

The observation is the env's Dict observation (``text``, ``task``, ``plan``, ``admissible_commands``, ...).
History is a sequence of ``(observation, action)`` pairs, oldest first; only the last
``PromptOptions.history_window`` are shown. Everything here is pure: no tokenizer, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pilot_envs.core.protocol import TAGS
from trainers.core.registry import FORMATS

PLAN_STEP_SEPARATOR = " "
"""Separator between the ``Step i: ..`` items inside ``<plan>``."""


def format_plan(steps: Sequence[str]) -> str:
    """``["go to x", "take y"]`` -> ``"Step 1: go to x Step 2: take y"``."""
    return PLAN_STEP_SEPARATOR.join(f"Step {i}: {s.strip()}" for i, s in enumerate(steps, 1))


@dataclass(frozen=True)
class PromptFormat:
    """One agent format, as data.

    Response layout: ``fields`` lists the response parts in order; ``field_templates[name]`` renders one
    part (``{}`` is the value). Parts in ``optional_fields`` are omitted from an expert response when no
    value is given; the others get ``defaults`` (a template over ``action``) when missing.
    """

    name: str
    instruction: str
    """The closing instruction: how to answer this turn."""
    fields: tuple[str, ...]
    field_templates: Mapping[str, str]
    optional_fields: frozenset[str] = frozenset()
    defaults: Mapping[str, str] = field(default_factory=dict)
    plan_instruction: str | None = None
    """Replaces ``instruction`` while no plan is in effect (AdaPlan's first turn)."""
    revise_instruction: str | None = None
    """Appended to ``instruction`` while a plan is in effect (AdaPlan's plan revision)."""
    shows_plan: bool = False
    """Whether the plan in effect is shown by default (``PromptOptions.include_plan=None``)."""
    carry: str | None = None
    """A response part (a field of ``pilot_envs.core.protocol.ParsedAction``) whose latest written value
    later prompts show, on the line ``carry_line``; None: nothing is carried."""
    carry_line: str = "{}"
    """How a carried value is shown (``{}`` is the value, or ``carry_empty`` before one is written)."""
    carry_empty: str = ""
    expert: Callable[..., Mapping[str, str]] | None = None
    """Extra expert-answer parts: ``expert(values, turn_idx=, previous=)`` gets the generic parts
    (``action``, ``plan``, ``think``, ``subgoal`` = the milestone worked on) and the previously carried
    value, and returns the parts the format adds (its own decision logic, e.g. when to switch)."""


@dataclass(frozen=True)
class PromptOptions:
    """Options common to every format."""

    history_window: int = 2
    """How many past (observation, action) pairs to show (verl-agent uses 2)."""
    include_admissible: bool = True
    """List the admissible commands."""
    include_plan: bool | None = None
    """Show ``obs["plan"]`` (e.g. oracle plans in PilotRL stage 1); None: the format's default."""
    environment: str = "a text-based embodied environment"
    system: str | None = None
    """An optional system message placed before the user message."""
    instructions_in_system: bool = False
    """Put the turn's answer instruction in the system message instead of at the end of the user message (for
    chat models whose template has a system role)."""
    max_length: int | None = None
    """Budget for the user message, measured by ``length_fn``. Over budget, drop in this order: the oldest
    history pairs, then admissible commands from the end of the list, then the start of the current
    observation. The task and the instructions are never cut."""
    length_fn: Callable[[str], int] = len


TAGGED: Mapping[str, str] = {name: f"<{name}>{{}}</{name}>" for name in TAGS}
"""``field_templates`` of the tagged formats: each part inside its protocol tag."""
_ACT = (
    "Once you've finished your reasoning, choose an admissible action for the current step and present it "
    "within <action> </action> tags."
)
_THINK = (
    "You should first reason step-by-step about the current situation. This reasoning process MUST be "
    "enclosed within <think> </think> tags."
)

for _format in (
    PromptFormat(
        name="think_action",
        instruction=f"Now it's your turn to take an action.\n{_THINK}\n{_ACT}",
        fields=("think", "action"),
        field_templates=TAGGED,
        defaults={"think": "The next step is to {action}."},
    ),
    PromptFormat(
        name="react",
        instruction=(
            "Now it's your turn to take an action. First write one line starting with 'Thought:' that "
            "reasons about the current situation, then one line starting with 'Action:' followed by "
            "exactly one admissible action."
        ),
        fields=("think", "action"),
        field_templates={"think": "Thought: {}\n", "action": "Action: {}"},
        defaults={"think": "The next step is to {action}."},
    ),
    PromptFormat(
        name="adaplan",
        instruction=(f"Now it's your turn to take an action, guided by the current plan.\n{_THINK}\n{_ACT}"),
        plan_instruction=(
            "First make a global plan for the whole task and present it within <plan> </plan> tags as "
            "numbered steps, like <plan>Step 1: ... Step 2: ...</plan>.\n"
            f"Then take the first action.\n{_THINK}\n{_ACT}"
        ),
        revise_instruction=(
            "If the situation has changed and the plan no longer fits, first write a revised plan within "
            "<plan> </plan> tags, keeping the steps already done."
        ),
        fields=("plan", "think", "action"),
        field_templates=TAGGED,
        optional_fields=frozenset({"plan"}),
        defaults={"think": "Following the plan, the next step is to {action}."},
        shows_plan=True,
    ),
):
    FORMATS.register(_format.name)(_format)




def get_format(fmt: str | PromptFormat) -> PromptFormat:
    """Look a format up by name (or pass a :class:`PromptFormat` through)."""
    if isinstance(fmt, PromptFormat):
        return fmt
    return FORMATS.get(fmt)


# ----------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class _Parts:
    """The variable parts of a prompt, shrunk in place of the rendered text when over budget."""

    history: tuple[tuple[str, str], ...]
    admissible: tuple[str, ...]
    admissible_dropped: int
    observation: str


def _render_user(
    fmt: PromptFormat,
    obs: Mapping[str, Any],
    parts: _Parts,
    step: int,
    carried: str | None,
    opts: PromptOptions,
) -> str:
    plan = [str(s) for s in obs.get("plan", ()) or ()]
    show_plan = fmt.shows_plan if opts.include_plan is None else opts.include_plan
    lines = [
        f"You are an expert agent operating in {opts.environment}. Your task is to: {obs.get('task', '')}"
    ]
    if show_plan and plan:
        lines.append(f"Your current plan is: {format_plan(plan)}")
    if fmt.carry is not None:
        lines.append(fmt.carry_line.format(carried if carried else fmt.carry_empty))
    if parts.history:
        first = step - len(parts.history) + 1
        hist = "\n".join(
            f"[Observation {first + i}: '{o}', Action {first + i}: '{a}']"
            for i, (o, a) in enumerate(parts.history)
        )
        lines.append(
            f"Prior to this step, you have already taken {step} step(s). Below are the most recent "
            f"{len(parts.history)} observations and the corresponding actions you took:\n{hist}"
        )
        lines.append(f"You are now at step {step + 1} and your current observation is: {parts.observation}")
    else:
        lines.append(f"Your current observation is: {parts.observation}")
    if opts.include_admissible:
        cmds = ", ".join(f"'{c}'" for c in parts.admissible)
        more = f" (and {parts.admissible_dropped} more)" if parts.admissible_dropped else ""
        lines.append(f"Your admissible actions of the current situation are: [{cmds}]{more}.")
    if not opts.instructions_in_system:
        lines.append("\n" + turn_instruction(fmt, obs))
    return "\n".join(lines)


def turn_instruction(fmt: str | PromptFormat, obs: Mapping[str, Any]) -> str:
    """How to answer this turn: the format's instruction (its plan instruction while no plan is in effect, with
    its revision note while one is)."""
    f = get_format(fmt)
    plan = [str(s) for s in obs.get("plan", ()) or ()]
    if f.plan_instruction is not None and not plan:
        return f.plan_instruction
    return f.instruction + (f"\n{f.revise_instruction}" if f.revise_instruction and plan else "")


def _shrink(parts: _Parts) -> _Parts | None:
    """One truncation step in the documented order; None when nothing is left to cut."""
    if parts.history:
        return replace(parts, history=parts.history[1:])
    if parts.admissible:
        return replace(
            parts, admissible=parts.admissible[:-1], admissible_dropped=parts.admissible_dropped + 1
        )
    if parts.observation:
        keep = len(parts.observation) // 2
        return replace(parts, observation=("..." + parts.observation[-keep:]) if keep > 3 else "")
    return None


def render_prompt(
    fmt: str | PromptFormat,
    obs: Mapping[str, Any],
    *,
    history: Sequence[tuple[str, str]] = (),
    step: int | None = None,
    carried: str | None = None,
    options: PromptOptions | None = None,
) -> str:
    """The user message for one turn.

    Args:
        fmt: format name in :data:`FORMATS` or a :class:`PromptFormat`.
        obs: the env observation (``text``, ``task``, ``plan``, ``admissible_commands`` are read).
        history: all past ``(observation, action)`` pairs of the episode, oldest first; the last
            ``options.history_window`` are shown.
        step: number of steps taken so far (defaults to ``len(history)``).
        carried: the latest value the agent wrote in the format's carried part (:attr:`PromptFormat.carry`).
        options: :class:`PromptOptions`.
    """
    f, opts = get_format(fmt), options or PromptOptions()
    step = len(history) if step is None else step
    window = (
        tuple((str(o), str(a)) for o, a in history)[-opts.history_window :] if opts.history_window > 0 else ()
    )
    cmds = tuple(str(c) for c in obs.get("admissible_commands", ()) or ())
    parts: _Parts | None = _Parts(window, cmds, 0, str(obs.get("text", "")))
    text = _render_user(f, obs, parts, step, carried, opts)
    if opts.max_length is None:
        return text
    fits = lambda p: opts.length_fn(_render_user(f, obs, p, step, carried, opts)) <= opts.max_length  # noqa: E731
    while parts.history and not fits(parts):  # oldest history first, one pair at a time
        parts = replace(parts, history=parts.history[1:])
    if parts.admissible and not fits(parts):
        # commands from the end of the list: the most that fit, by bisection (ScienceWorld lists thousands)
        lo, hi = 0, len(parts.admissible) - 1  # keeping hi+1 does not fit; find the largest k <= hi that does
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(_keep_commands(parts, mid)):
                lo = mid
            else:
                hi = mid - 1
        parts = _keep_commands(parts, lo)
    while not fits(parts):  # then the start of the observation
        shrunk = _shrink(parts)
        if shrunk is None:
            break
        parts = shrunk
    return _render_user(f, obs, parts, step, carried, opts)


def _keep_commands(parts: _Parts, k: int) -> _Parts:
    """``parts`` with only the first ``k`` admissible commands (the rest counted as dropped)."""
    n = len(parts.admissible)
    return replace(parts, admissible=parts.admissible[:k], admissible_dropped=parts.admissible_dropped + n - k)


def render_messages(
    fmt: str | PromptFormat,
    obs: Mapping[str, Any],
    *,
    history: Sequence[tuple[str, str]] = (),
    step: int | None = None,
    carried: str | None = None,
    options: PromptOptions | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one turn: an optional system message and the user message of
    :func:`render_prompt` (same arguments). With ``options.instructions_in_system`` the turn's instruction
    (:func:`turn_instruction`) is the system message (after ``options.system``), not the user message's end."""
    opts = options or PromptOptions()
    user = render_prompt(fmt, obs, history=history, step=step, carried=carried, options=opts)
    parts = [opts.system] if opts.system else []
    if opts.instructions_in_system:
        parts.append(turn_instruction(fmt, obs))
    system = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
    return [*system, {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------------- responses
def render_expert_response(
    fmt: str | PromptFormat,
    *,
    action: str,
    plan: Sequence[str] | str | None = None,
    think: str | None = None,
    **parts: str | None,
) -> str:
    """The response an expert would write in ``fmt`` (SFT warm-start targets).

    ``parts`` are the values of further answer parts by name (e.g. ``subgoal=``). Parts the format does not
    use are ignored; a missing required part gets the format's default (a template over ``action``, e.g.
    ``think``: a sentence naming the action). A ``plan`` (list of steps) is written only by formats that have a
    plan part (a plan given as text, ``"Step 1: .. Step 2: .."``, is used as it is).
    """
    f = get_format(fmt)
    written_plan = (plan if isinstance(plan, str) else format_plan(plan)) if plan else None
    values: dict[str, str | None] = {**parts, "action": action, "plan": written_plan, "think": think}
    out = []
    for name in f.fields:
        value = values.get(name)
        if value is None and name in f.optional_fields:
            continue
        if value is None:
            value = f.defaults.get(name, "").format(action=action)
        out.append(f.field_templates[name].format(value))
    return "".join(out)


def scaffold_texts() -> list[str]:
    """Every fixed sentence the formats can emit (for building a tokenizer that knows their words)."""
    obs = {"text": "obs", "task": "task", "plan": ["a", "b"], "admissible_commands": ["look"]}
    texts: list[str] = []
    for _, f in FORMATS.items():
        texts.append(render_prompt(f, obs, history=[("o", "a")], carried="s"))
        texts.append(render_prompt(f, {**obs, "plan": []}, options=PromptOptions(include_plan=True)))
        texts.append(render_expert_response(f, action="look", plan=["look"]))
    return texts
