"""HiPER's turn structure as pure functions: the parsed ``hiper`` answer, segment boundaries, reward shaping.

Each turn the agent answers ``<switch>KEEP|SWITCH</switch><subgoal>..</subgoal><action>..</action>``
(the ``hiper`` prompt format). A **segment** (one subgoal's execution) starts at turn 0 and at every turn
whose switch is not KEEP; a missing or unreadable switch counts as KEEP (docs/methods.md, "HiPER and HAE"). So the only thing
that opens a segment after turn 0 is a well-formed ``<switch>SWITCH</switch>``.

Shaping (docs/methods.md, "HiPER and HAE"; added to the env reward of each turn; every field of :class:`Shaping` is a
positive magnitude that is subtracted):

- ``invalid_penalty`` on an invalid turn: the env executed nothing (``action_valid`` False) or the answer
  was malformed (``format_ok`` False);
- the KEEP penalty ``keep_penalty * (#KEEP / T)`` per trajectory of T turns, spread evenly over its KEEP
  turns, i.e. ``keep_penalty / T`` on each KEEP turn. A KEEP turn is a turn that continues the current
  segment (not a segment start); turn 0 always starts a segment, so it is never a KEEP turn;
- ``subgoal_change_penalty`` on a KEEP turn whose subgoal text differs from the subgoal in effect (the
  last subgoal written before it, which the prompt shows), compared after collapsing white space and
  case. A KEEP turn that writes no subgoal keeps the current one and is not penalised.

Nothing here needs torch or a model; the trainer calls these per trajectory.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from pilot_envs.core.protocol import parse_action

__all__ = ["KEEP", "LENGTH_BUCKETS", "SWITCH", "HiperTurn", "Shaping", "ShapedTurns", "parse_hiper", "segment_lengths",
           "segment_starts", "segment_stats", "shape"]

KEEP, SWITCH = "KEEP", "SWITCH"


@dataclass(frozen=True)
class HiperTurn:
    """One parsed ``hiper`` answer."""

    switch: str | None
    """``"KEEP"``, ``"SWITCH"`` or None (no ``<switch>`` tag, or its content is neither word)."""
    subgoal: str | None
    """The ``<subgoal>`` text (white space collapsed), None when absent."""
    command: str | None
    """The normalised command the env executes (``<action>`` content), None when there is none."""
    format_ok: bool
    """The answer is well formed (tags closed, each at most once, switch readable)."""

    @property
    def switches(self) -> bool:
        """True only for an explicit ``SWITCH`` (a missing switch counts as KEEP)."""
        return self.switch == SWITCH


def parse_hiper(text: str) -> HiperTurn:
    """Parse a response with the env's own total parser (:func:`pilot_envs.core.protocol.parse_action`)."""
    p = parse_action(text)
    return HiperTurn(switch=p.switch, subgoal=p.subgoal or None, command=p.command, format_ok=p.format_ok)


def segment_starts(switches: Sequence[str | None]) -> list[bool]:
    """Per turn of one trajectory: does it start a segment? Turn 0 always; later turns iff ``SWITCH``."""
    return [i == 0 or s == SWITCH for i, s in enumerate(switches)]


def segment_lengths(starts: Sequence[bool]) -> list[int]:
    """Turns per segment of one trajectory, in order, from its segment-start flags (turn 0 always starts one)."""
    bounds = [i for i, s in enumerate(starts) if s or i == 0] + [len(starts)]
    return [b - a for a, b in pairwise(bounds)]


LENGTH_BUCKETS: tuple[tuple[str, int, int], ...] = (("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4-5", 4, 5),
                                                    ("6-9", 6, 9), ("10+", 10, 1 << 30))
"""Histogram buckets of :func:`segment_stats`: (label, shortest, longest) segment length in turns."""


def segment_stats(lengths: Sequence[int]) -> dict[str, float]:
    """Summary of segment lengths (turns): ``segments``, ``mean``, ``median``, ``share_multi`` (segments longer
    than one turn), ``turn_share_multi`` (turns that lie in such segments) and ``share_<bucket>`` for each of
    :data:`LENGTH_BUCKETS` (shares of segments). All 0 without segments."""
    n = len(lengths)
    out: dict[str, float] = {"segments": float(n)}
    if not n:
        return {**out, "mean": 0.0, "median": 0.0, "share_multi": 0.0, "turn_share_multi": 0.0,
                **{f"share_{b}": 0.0 for b, _, _ in LENGTH_BUCKETS}}
    out["mean"] = sum(lengths) / n
    out["median"] = float(statistics.median(lengths))
    out["share_multi"] = sum(x > 1 for x in lengths) / n
    out["turn_share_multi"] = sum(x for x in lengths if x > 1) / max(1, sum(lengths))
    for label, lo, hi in LENGTH_BUCKETS:
        out[f"share_{label}"] = sum(lo <= x <= hi for x in lengths) / n
    return out


@dataclass(frozen=True)
class Shaping:
    """HiPER's shaping magnitudes (the paper's: 0.1 and 0.3 on ALFWorld)."""

    invalid_penalty: float = 0.1
    keep_penalty: float = 0.3
    subgoal_change_penalty: float = 0.3

    def __post_init__(self) -> None:
        for name in ("invalid_penalty", "keep_penalty", "subgoal_change_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"Shaping.{name} is a magnitude that is subtracted; got {getattr(self, name)}")


@dataclass(frozen=True)
class ShapedTurns:
    """Per-turn shaping of one trajectory (each list has one entry per turn; penalties are <= 0)."""

    seg_start: list[bool]
    keep: list[bool]
    """The turn continues the current segment (not a segment start)."""
    subgoal_changed: list[bool]
    """A KEEP turn that wrote a subgoal different from the one in effect."""
    invalid: list[float]
    keep_penalty: list[float]
    change_penalty: list[float]

    @property
    def total(self) -> list[float]:
        """The shaping reward of each turn (sum of the three terms)."""
        return [a + b + c for a, b, c in zip(self.invalid, self.keep_penalty, self.change_penalty, strict=True)]


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def shape(turns: Sequence[HiperTurn], valid: Sequence[bool], shaping: Shaping) -> ShapedTurns:
    """Segment boundaries and shaping terms of one trajectory.

    ``valid[t]``: the turn counts as valid (the env executed its action and the answer was well formed).
    """
    if len(valid) != len(turns):
        raise ValueError(f"{len(turns)} turns but {len(valid)} validity flags")
    n = len(turns)
    starts = segment_starts([t.switch for t in turns])
    keep = [not s for s in starts]
    changed: list[bool] = []
    in_effect: str | None = None
    for t, is_keep in zip(turns, keep, strict=True):
        changed.append(bool(is_keep and in_effect is not None and t.subgoal is not None
                            and _norm(t.subgoal) != _norm(in_effect)))
        if t.subgoal:
            in_effect = t.subgoal
    per_keep = shaping.keep_penalty / n if n else 0.0
    return ShapedTurns(
        seg_start=starts,
        keep=keep,
        subgoal_changed=changed,
        invalid=[0.0 if v else -shaping.invalid_penalty for v in valid],
        keep_penalty=[-per_keep if k else 0.0 for k in keep],
        change_penalty=[-shaping.subgoal_change_penalty if c else 0.0 for c in changed],
    )
