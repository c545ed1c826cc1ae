"""The action protocol: a pure, total parser from an agent's text to a typed :class:`ParsedAction`.

Accepted forms (every env card's "Action Space", docs/envs/):

* a bare command: ``go to cabinet 1``
* tagged LLM output: ``<think>..</think>``, ``<plan>Step 1: .. Step 2: ..</plan>``,
  ``<switch>KEEP|SWITCH</switch>``, ``<subgoal>..</subgoal>``, ``<action>..</action>``
* ReAct text: ``Thought: .. Action: ..``, ``> take mug 1 from cabinet 2``, ``think: ..``

:func:`parse_action` never raises for a string and never mutates anything; validity is reported in the
result (``format_ok``), not raised. Tags are matched case-insensitively with plain string search (no
backtracking regular expressions), so a huge input costs linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pilot_envs.core.contract import MAX_ACTION_CHARS

__all__ = ["ParsedAction", "parse_action", "parse_plan", "normalize_command", "MAX_ACTION_CHARS"]


TAGS = ("think", "plan", "switch", "subgoal", "action")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_PLAIN = re.compile(r"(?!think )[a-z0-9/]+(?: [a-z0-9/]+)*")
_STEP_SPLIT = re.compile(r"(?:^|\s|\n)(?:step\s*\d+\s*[:.)-]|\d+\s*[.):]\s)", re.IGNORECASE)
_REACT_ACTION = re.compile(r"(?:^|\n)\s*action\s*(?:\d+\s*)?:\s*", re.IGNORECASE)
_REACT_THOUGHT = re.compile(r"(?:^|\n)\s*thought\s*(?:\d+\s*)?:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAction:
    """What an agent's text asks for.

    ``kind`` is ``"command"`` (``command`` holds the normalised command to execute), ``"think"``
    (reasoning only, answered ``OK.``), ``"plan"`` (a plan declaration without a command, answered
    ``OK.``) or ``"empty"`` (nothing usable: answered ``Nothing happens.``).
    """

    kind: str
    command: str | None = None
    think: str | None = None
    plan: tuple[str, ...] | None = None
    switch: str | None = None
    subgoal: str | None = None
    format_ok: bool = True
    style: str = "bare"  # "bare" | "tags" | "react"


def normalize_command(text: str) -> str:
    """Lower-case, drop control characters, collapse white space, strip quotes and a final period."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).lower().strip(" \"'`")
    while text.endswith((".", "!")):  # re-strip after each cut, so normalising twice changes nothing ("'go' .")
        text = text[:-1].strip(" \"'`")
    return text


def parse_plan(text: str) -> tuple[str, ...]:
    """Split a plan into steps: ``Step 1: .. Step 2: ..``, a numbered list, lines, or ``;``-separated."""
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        return ()
    marks = list(_STEP_SPLIT.finditer(text))
    if marks:
        pieces = [text[m.end() : (marks[i + 1].start() if i + 1 < len(marks) else len(text))] for i, m in enumerate(marks)]
        head = text[: marks[0].start()]
        if head.strip():
            pieces.insert(0, head)
    elif "\n" in text:
        pieces = text.split("\n")
    else:
        pieces = text.split(";")
    steps = (_SPACES.sub(" ", p).strip(" -*\u2022.;") for p in pieces)
    return tuple(s for s in steps if s)


def _find_tag(text: str, lower: str, tag: str) -> tuple[str | None, int, bool]:
    """Content of the first ``<tag>..</tag>``, how many opening tags there are, and whether it closed."""
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    count = lower.count(open_t)
    start = lower.find(open_t)
    if start < 0:
        return None, 0, True
    end = lower.find(close_t, start + len(open_t))
    if end < 0:
        return text[start + len(open_t) :], count, False
    return text[start + len(open_t) : end], count, True


def _strip_tags(text: str, lower: str) -> str:
    """The text outside every known tag block."""
    out, pos = [], 0
    while True:
        nxt = [(lower.find(f"<{t}>", pos), t) for t in TAGS]
        nxt = [(i, t) for i, t in nxt if i >= 0]
        if not nxt:
            out.append(text[pos:])
            break
        i, t = min(nxt)
        out.append(text[pos:i])
        end = lower.find(f"</{t}>", i)
        if end < 0:
            break
        pos = end + len(t) + 3
    return " ".join(out)


def _parse_tagged(text: str, lower: str) -> ParsedAction:
    found = {tag: _find_tag(text, lower, tag) for tag in TAGS}
    ok = all(closed and count <= 1 for _, count, closed in found.values())
    think = found["think"][0]
    plan_text = found["plan"][0]
    switch_text = found["switch"][0]
    subgoal = found["subgoal"][0]
    action = found["action"][0]
    plan = parse_plan(plan_text) if plan_text is not None else None
    switch = None
    if switch_text is not None:
        word = normalize_command(switch_text).upper()
        switch = word if word in ("KEEP", "SWITCH") else None
        ok = ok and switch is not None
    common = dict(
        think=think.strip() if think is not None else None,
        plan=plan,
        switch=switch,
        subgoal=_SPACES.sub(" ", subgoal).strip() if subgoal is not None else None,
        style="tags",
    )
    if action is not None:
        command = normalize_command(action)
        if command:
            return ParsedAction("command", command=command, format_ok=ok, **common)
        return ParsedAction("empty", format_ok=False, **common)
    rest = normalize_command(_strip_tags(text, lower))
    if rest:  # tags without <action>: the text outside them is taken as the command
        return ParsedAction("command", command=rest, format_ok=False, **common)
    if plan:
        return ParsedAction("plan", format_ok=ok, **common)
    if think is not None:
        return ParsedAction("think", format_ok=ok, **common)
    return ParsedAction("empty", format_ok=False, **common)


def _parse_react(text: str) -> ParsedAction | None:
    actions = list(_REACT_ACTION.finditer(text))
    thought_m = _REACT_THOUGHT.search(text)
    if not actions and not thought_m:
        return None
    thought = None
    if thought_m:
        end = actions[0].start() if actions and actions[0].start() > thought_m.end() else len(text)
        thought = text[thought_m.end() : end].strip()
    if not actions:
        return ParsedAction("think", think=thought, style="react")
    m = actions[0]
    line = text[m.end() :].split("\n", 1)[0]
    sub = parse_action(line)
    if sub.kind == "command":
        return ParsedAction("command", command=sub.command, think=thought, style="react", format_ok=len(actions) == 1)
    if sub.kind == "think":
        return ParsedAction("think", think=sub.think or thought, style="react")
    return ParsedAction("empty", think=thought, style="react", format_ok=False)


def parse_action(action: str) -> ParsedAction:
    """Parse any string into a :class:`ParsedAction`. Total: never raises for a ``str``."""
    text = action[:MAX_ACTION_CHARS]
    if _PLAIN.fullmatch(text):  # fast path: an already-normalised bare command
        return ParsedAction("command", command=text)
    lower = text.lower()
    if any(f"<{tag}>" in lower for tag in TAGS):
        return _parse_tagged(text, lower)
    react = _parse_react(text)
    if react is not None:
        return react
    stripped = _CONTROL.sub(" ", text).strip()
    if stripped.startswith(">"):
        stripped = stripped[1:]
    if stripped.lower().startswith("think:"):
        return ParsedAction("think", think=stripped[6:].strip(), style="react")
    command = normalize_command(stripped)
    if not command:
        return ParsedAction("empty", format_ok=False)
    return ParsedAction("command", command=command)
