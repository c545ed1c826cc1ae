"""Where HiPER's advantages and values live inside a response's tokens.

For each response (token ids) :func:`turn_layout` finds

- the tokens of the first ``<switch>..</switch>``, ``<subgoal>..</subgoal>`` and ``<action>..</action>``
  span (the tags themselves included by default), as three **disjoint** boolean masks: A^b goes on the
  switch tokens, A^H on the subgoal tokens (of segment-start turns only), A^L on the action tokens; every
  other token (eos, text outside the tags, repeated tags) is not trained. Only the first span of each tag
  is used, because it is the one the env's parser reads. A token belongs to a span when it touches one of its
  characters (every token holding a byte of a multi-byte character split over tokens touches it,
  :func:`trainers.core.tagmask.token_char_ranges`); a token that straddles two spans (a BPE merge such as
  ``><``) belongs to the span it overlaps most (ties: the earlier span), so no token carries two advantages;
- ``low_index``: where the critic's V_L is read, as an index into the critic's outputs
  ``[1 + T_resp]`` (:class:`trainers.core.value.ValueModel`: index 0 = after the last prompt token,
  index ``j + 1`` = after response token ``j``). It is ``k + 1`` for the token ``k`` that completes the
  first closed ``</subgoal>``, i.e. "right after ``</subgoal>``" (state + current subgoal). Without a
  closed subgoal span the turn has no subgoal context and V_L falls back to index 0, the start of the turn.

Character spans come from :mod:`trainers.core.tagmask` (decode-based, so any tokenizer works).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainers.core.tagmask import tag_char_spans, token_char_ranges

__all__ = ["HIPER_TAGS", "TurnLayout", "batch_layout", "turn_layout"]

HIPER_TAGS: tuple[str, ...] = ("switch", "subgoal", "action")


@dataclass(frozen=True)
class TurnLayout:
    """Token layout of one response (see the module docstring)."""

    masks: dict[str, Tensor]
    """``{tag: BoolTensor[len(response)]}`` for the tags of :data:`HIPER_TAGS`, pairwise disjoint."""
    low_index: int
    """Index into the critic's ``[1 + len(response)]`` outputs at which V_L is read."""


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def turn_layout(tokenizer: Any, response_ids: Sequence[int], *, include_tags: bool = True) -> TurnLayout:
    """The layout of one response (``tokenizer`` only needs ``decode``)."""
    text, spans, touched = token_char_ranges(tokenizer, response_ids)
    first: dict[str, tuple[int, int]] = {}
    for tag in HIPER_TAGS:
        found = tag_char_spans(text, tag, include_tags=include_tags)
        if found:
            first[tag] = found[0]
    order = sorted(first.items(), key=lambda kv: kv[1][0])  # tie-break: the earlier span
    masks = {tag: torch.zeros(len(spans), dtype=torch.bool) for tag in HIPER_TAGS}
    for k, span in enumerate(touched):  # characters touched, not owned: split characters count for every token
        best, best_len = None, 0
        for tag, tag_span in order:
            n = _overlap(span, tag_span)
            if n > best_len:
                best, best_len = tag, n
        if best is not None:
            masks[best][k] = True
    return TurnLayout(masks, _low_index(text, spans))


def _low_index(text: str, spans: Sequence[tuple[int, int]]) -> int:
    outer = tag_char_spans(text, "subgoal", include_tags=True)
    if not outer:
        return 0
    end = outer[0][1]
    if not text[:end].lower().endswith("</subgoal>"):
        return 0  # unclosed
    for k, (start, stop) in enumerate(spans):
        if start < end <= stop:
            return k + 1
    return 0


def batch_layout(
    tokenizer: Any, responses: Sequence[Sequence[int]], width: int, *, include_tags: bool = True
) -> tuple[dict[str, Tensor], Tensor]:
    """Layouts of many responses: ``({tag: BoolTensor[N, width]}, low_index LongTensor[N])``."""
    masks = {tag: torch.zeros(len(responses), width, dtype=torch.bool) for tag in HIPER_TAGS}
    low = torch.zeros(len(responses), dtype=torch.long)
    for i, ids in enumerate(responses):
        lay = turn_layout(tokenizer, ids, include_tags=include_tags)
        for tag, m in lay.masks.items():
            n = min(width, m.numel())
            masks[tag][i, :n] = m[:n]
        low[i] = lay.low_index
    return masks, low
