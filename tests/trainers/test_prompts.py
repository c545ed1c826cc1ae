"""Prompt formats: rendering options, truncation order, expert responses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.core.prompts import (
    PromptFormat,
    PromptOptions,
    format_plan,
    get_format,
    render_expert_response,
    render_messages,
    render_prompt,
    scaffold_texts,
    turn_instruction,
)
from trainers.core.registry import FORMATS

OBS = {
    "text": "You arrive at cabinet 1. On the cabinet 1, you see a mug 1.",
    "task": "put a clean mug in coffeemachine.",
    "plan": ["go to cabinet 1", "take mug 1 from cabinet 1", "clean mug 1 with sinkbasin 1"],
    "subgoals_done": [1, 0, 0, 0],
    "progress": 0.25,
    "admissible_commands": ["take mug 1 from cabinet 1", "close cabinet 1", "look", "inventory"],
}
NO_PLAN = {**OBS, "plan": []}
HISTORY = [(f"observation {i}", f"action {i}") for i in range(5)]
TAG_RE = re.compile(r"<(/?)(think|plan|action|switch|subgoal)>")


def parse_tags(text: str) -> dict[str, str]:
    """A strict little parser: tags must open/close in order, never nest, never repeat."""
    out: dict[str, str] = {}
    open_tag: str | None = None
    start = 0
    for m in TAG_RE.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            assert open_tag is None, f"nested <{name}> in {text!r}"
            assert name not in out, f"repeated <{name}>"
            open_tag, start = name, m.end()
        else:
            assert open_tag == name, f"unbalanced </{name}> in {text!r}"
            out[name] = text[start : m.start()]
            open_tag = None
    assert open_tag is None, f"unclosed <{open_tag}>"
    return out


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("with_history", [False, True])
@pytest.mark.parametrize("include_plan", [None, False, True])
@pytest.mark.parametrize("include_admissible", [False, True])
def test_every_format_renders(
    name: str, with_history: bool, include_plan: bool | None, include_admissible: bool
) -> None:
    opts = PromptOptions(include_plan=include_plan, include_admissible=include_admissible)
    text = render_prompt(
        name, OBS, history=HISTORY if with_history else (), carried="find a mug", options=opts
    )
    assert OBS["task"] in text and OBS["text"] in text
    assert ("'close cabinet 1'" in text) == include_admissible
    show_plan = FORMATS.get(name).shows_plan if include_plan is None else include_plan
    assert (format_plan(OBS["plan"]) in text) == show_plan
    assert ("action 4" in text) == with_history
    answer = FORMATS.get(name).field_templates[FORMATS.get(name).fields[-1]].split("{}")[0].strip()
    assert answer in text  # the instruction names the answer's form (<action>, Action:, <plan> ...)
    f = FORMATS.get(name)
    if f.carry is not None:  # the carried value is shown on its line ...
        assert f.carry_line.format("find a mug") in text
    else:  # ... and only by formats that carry one
        assert text.count("find a mug") == turn_instruction(f, OBS).count("find a mug")


def test_history_window_and_step_numbers() -> None:
    text = render_prompt("think_action", OBS, history=HISTORY)
    assert "action 2" not in text and "action 3" in text and "action 4" in text
    assert "[Observation 4: 'observation 3', Action 4: 'action 3']" in text
    assert "already taken 5 step(s)" in text and "now at step 6" in text
    no_window = render_prompt("think_action", OBS, history=HISTORY, options=PromptOptions(history_window=0))
    assert "[Observation" not in no_window and "Your current observation is" in no_window
    wide = render_prompt("think_action", OBS, history=HISTORY, options=PromptOptions(history_window=10))
    assert all(f"action {i}'" in wide for i in range(5))
    assert "step 8" in render_prompt("react", OBS, history=HISTORY[-1:], step=7)


def test_adaplan_asks_for_plan_until_one_exists() -> None:
    first = render_prompt("adaplan", NO_PLAN)
    assert "<plan>Step 1: ... Step 2: ...</plan>" in first and "current plan" not in first
    later = render_prompt("adaplan", OBS, history=HISTORY[:1])
    assert "Your current plan is: Step 1: go to cabinet 1 Step 2: take mug 1" in later
    assert "revised plan" in later and "global plan" not in later
    # think_action shows an oracle plan only on request and never asks for one
    assert "<plan>" not in render_prompt("think_action", NO_PLAN, options=PromptOptions(include_plan=True))


def test_hiper_shows_subgoal() -> None:
    assert "current subgoal is: none yet" in render_prompt("hiper", OBS)
    assert "current subgoal is: take the mug" in render_prompt("hiper", OBS, carried="take the mug")
    assert "KEEP or SWITCH" in render_prompt("hiper", OBS)


def test_truncation_order() -> None:
    full = render_prompt("think_action", OBS, history=HISTORY)

    def render(budget: int) -> str:
        return render_prompt("think_action", OBS, history=HISTORY, options=PromptOptions(max_length=budget))

    assert render(len(full)) == full
    # 1. the oldest history pair goes first
    one_less = render(len(full) - 1)
    assert "action 3'" not in one_less and "action 4'" in one_less and "'inventory'" in one_less
    # 2. then all history, then admissible commands from the end
    no_hist = render_prompt("think_action", OBS, step=5)
    cut_cmds = render(len(no_hist) - 1)
    assert "action 4'" not in cut_cmds and "'inventory'" not in cut_cmds and "'close cabinet 1'" in cut_cmds
    assert re.search(r"\] \(and \d more\)\.", cut_cmds) and len(cut_cmds) <= len(no_hist) - 1
    # 3. then the start of the observation; task and instructions always stay
    tiny = render(10)
    assert OBS["task"] in tiny and "<action> </action>" in tiny
    assert "'take mug 1" not in tiny and "On the cabinet 1" not in tiny
    mid = render(len(tiny) + 30)
    assert "..." in mid and mid.count("you see a mug 1.") == 1
    # a custom length function (e.g. tokens) is honoured
    words = render_prompt(
        "think_action",
        OBS,
        history=HISTORY,
        options=PromptOptions(max_length=150, length_fn=lambda s: len(s.split())),
    )
    assert len(words.split()) <= 150 and "action 4'" in words


@settings(max_examples=80, deadline=None)
@given(n_cmds=st.integers(0, 300), budget=st.integers(0, 6000), n_hist=st.integers(0, 4))
def test_truncation_keeps_the_most_commands_that_fit(n_cmds: int, budget: int, n_hist: int) -> None:
    """Bisection over the commands (fast for ScienceWorld's thousands) gives exactly the prompt that dropping
    one item at a time in the documented order gives (the reference loop below)."""
    from trainers.core.prompts import _Parts, _render_user, _shrink

    obs = {**OBS, "admissible_commands": [f"focus on thing {i}" for i in range(n_cmds)]}
    hist = HISTORY[:n_hist]
    opts = PromptOptions(max_length=budget)
    got = render_prompt("think_action", obs, history=hist, options=opts)
    window = tuple(hist)[-opts.history_window :] if opts.history_window > 0 else ()
    parts = _Parts(window, tuple(obs["admissible_commands"]), 0, obs["text"])
    fmt = FORMATS.get("think_action")
    ref = _render_user(fmt, obs, parts, len(hist), None, opts)
    while len(ref) > budget and (parts := _shrink(parts)) is not None:
        ref = _render_user(fmt, obs, parts, len(hist), None, opts)
    assert got == ref


def test_render_messages_roles() -> None:
    msgs = render_messages("react", OBS)
    assert [m["role"] for m in msgs] == ["user"]
    msgs = render_messages("react", OBS, options=PromptOptions(system="Be brief."))
    assert msgs[0] == {"role": "system", "content": "Be brief."} and msgs[1]["role"] == "user"


def test_get_format() -> None:
    assert all(isinstance(f, PromptFormat) and f.name == k for k, f in FORMATS.items())
    assert get_format(FORMATS.get("react")) is FORMATS.get("react")
    with pytest.raises(KeyError, match="unknown prompt format"):
        get_format("nope")


def test_expert_responses_are_well_formed() -> None:
    act = "take mug 1 from cabinet 1"
    r = render_expert_response("think_action", action=act, think="The mug is here.")
    assert r == f"<think>The mug is here.</think><action>{act}</action>"
    assert parse_tags(render_expert_response("think_action", action=act))["think"]

    react = render_expert_response("react", action=act)
    assert re.fullmatch(r"Thought: .+\nAction: " + re.escape(act), react)
    assert not TAG_RE.search(react)

    with_plan = render_expert_response("adaplan", action=act, plan=OBS["plan"], think="t")
    tags = parse_tags(with_plan)
    assert list(tags) == ["plan", "think", "action"] and tags["action"] == act
    assert re.findall(r"Step (\d+): ", tags["plan"]) == ["1", "2", "3"]
    assert list(parse_tags(render_expert_response("adaplan", action=act))) == ["think", "action"]

    hiper = parse_tags(render_expert_response("hiper", action=act, subgoal="get the mug", switch="SWITCH"))
    assert hiper == {"switch": "SWITCH", "subgoal": "get the mug", "action": act}
    default = parse_tags(render_expert_response("hiper", action=act, think="ignored", plan=["x"]))
    assert default == {"switch": "KEEP", "subgoal": act, "action": act}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_expert_response_round_trip(name: str) -> None:
    act = "go to countertop 2"
    text = render_expert_response(name, action=act, plan=["a", "b"], subgoal="s", switch="KEEP", think="hm")
    f = FORMATS.get(name)
    if all(f.field_templates[k].startswith("<") for k in f.fields):
        tags = parse_tags(text)
        assert list(tags) == list(f.fields)
        assert tags.get("action", act) == act
        assert tags.get("plan", "Step 1: a Step 2: b") == "Step 1: a Step 2: b"
    else:
        assert text.endswith(f"Action: {act}")


def test_scaffold_texts_cover_formats() -> None:
    texts = scaffold_texts()
    joined = "\n".join(texts)
    for tag in ("<think>", "<plan>", "<action>", "<switch>", "<subgoal>", "Thought:", "KEEP", "SWITCH"):
        assert tag in joined
