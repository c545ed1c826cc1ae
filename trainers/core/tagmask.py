"""Which response tokens belong to which tag span (``<plan>..</plan>``, ``<action>..</action>`` ...).

Trainers that train only some parts of a response (PilotRL: plan tokens or action tokens per stage; HiPER:
a different advantage on the ``<switch>``, ``<subgoal>`` and ``<action>`` spans) need, per response token,
the tag span it falls in. Tokens do not line up with characters (BPE merges, byte fallback, a tag split into
``<``, ``action``, ``>``), so the mapping goes through character offsets:

1. :func:`token_char_spans`: the character span of every token in ``decode(response_ids)``, found by
   decoding growing prefixes (the end of token k is the longest common prefix of ``decode(ids[:k+1])``
   and the full text; a token that only completes a multi-byte character owns that character). Works for
   any tokenizer with ``decode``: the tiny word-level one, byte-level BPE (GPT-2/Qwen/Llama-3) and
   SentencePiece. A fast path re-encodes the text with offsets and uses them when the re-encoding gives
   back exactly ``response_ids``.
2. :func:`tag_char_spans`: the character spans of each tag in the text (case-insensitive, like the env's
   parser; an unclosed tag runs to the end of the text; all occurrences).
3. :func:`tag_token_masks`: a token belongs to a tag when its character span overlaps the tag's span
   (the tags themselves included, ``include_tags=True``, or only the content between them).

Everything here is pure (no model); the tokenizer is only asked to ``decode`` (and, on the fast path, to
encode with offsets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from pilot_envs.core.protocol import TAGS

__all__ = ["DEFAULT_TAGS", "tag_char_spans", "tag_token_masks", "tag_token_masks_batch", "token_char_spans"]

DEFAULT_TAGS: tuple[str, ...] = TAGS
"""The env protocol's tags (``pilot_envs.core.protocol.TAGS``)."""


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _fast_spans(tokenizer: Any, ids: Sequence[int], text: str) -> list[tuple[int, int]] | None:
    """Offsets from re-encoding ``text``, if that gives back exactly ``ids`` (else None)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if list(enc["input_ids"]) != list(ids):
        return None
    spans = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    # Offsets may skip leading spaces (trim_offsets); make them cover the text contiguously.
    out, pos = [], 0
    for k, (_, e) in enumerate(spans):
        end = len(text) if k == len(spans) - 1 else max(pos, e)
        out.append((pos, end))
        pos = end
    return out


def token_char_spans(tokenizer: Any, response_ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """``(text, spans)``: the decoded text (special tokens kept) and each token's ``[start, end)`` in it.

    Spans are contiguous and cover the text; a token that decodes to nothing visible (or only to part of a
    multi-byte character) gets an empty span.
    """
    ids = [int(t) for t in response_ids]
    text = _decode(tokenizer, ids)
    if not ids:
        return text, []
    fast = _fast_spans(tokenizer, ids, text)
    if fast is not None:
        return text, fast
    spans, pos = [], 0
    for k in range(len(ids)):
        end = len(text) if k == len(ids) - 1 else max(pos, _common_prefix(_decode(tokenizer, ids[: k + 1]), text))
        spans.append((pos, end))
        pos = end
    return text, spans


def tag_char_spans(text: str, tag: str, *, include_tags: bool = True) -> list[tuple[int, int]]:
    """Character spans of every ``<tag>..</tag>`` in ``text`` (case-insensitive); an unclosed tag runs to
    the end. ``include_tags=False`` returns only the content between the tags."""
    out = []
    open_re = re.compile(re.escape(f"<{tag}>"), re.IGNORECASE)
    close_re = re.compile(re.escape(f"</{tag}>"), re.IGNORECASE)
    pos = 0
    while True:
        m = open_re.search(text, pos)
        if m is None:
            return out
        c = close_re.search(text, m.end())
        end_inner, end_outer = (c.start(), c.end()) if c else (len(text), len(text))
        out.append((m.start(), end_outer) if include_tags else (m.end(), end_inner))
        pos = end_outer if c else len(text)
        if pos >= len(text):
            return out


def tag_token_masks(
    tokenizer: Any,
    response_ids: Sequence[int],
    tags: Sequence[str] = DEFAULT_TAGS,
    *,
    include_tags: bool = True,
) -> dict[str, torch.Tensor]:
    """``{tag: BoolTensor[len(response_ids)]}``: True on the tokens inside that tag's spans.

    A token is inside a span when its characters overlap it (a token straddling a boundary counts for
    both sides). Tokens with an empty character span (e.g. half of a multi-byte character) are never
    inside. With ``include_tags`` the ``<tag>`` and ``</tag>`` tokens themselves are included.
    """
    text, spans = token_char_spans(tokenizer, response_ids)
    masks = {}
    for tag in tags:
        m = torch.zeros(len(spans), dtype=torch.bool)
        for s, e in tag_char_spans(text, tag, include_tags=include_tags):
            for k, (ts, te) in enumerate(spans):
                if ts < e and te > s:
                    m[k] = True
        masks[tag] = m
    return masks


def tag_token_masks_batch(
    tokenizer: Any,
    responses: Sequence[Sequence[int]],
    tags: Sequence[str] = DEFAULT_TAGS,
    *,
    width: int | None = None,
    include_tags: bool = True,
) -> dict[str, torch.Tensor]:
    """:func:`tag_token_masks` for many responses, right-padded to ``width`` (default: the longest):
    ``{tag: BoolTensor[B, width]}``."""
    width = max((len(r) for r in responses), default=0) if width is None else width
    out = {tag: torch.zeros(len(responses), width, dtype=torch.bool) for tag in tags}
    for i, ids in enumerate(responses):
        for tag, m in tag_token_masks(tokenizer, ids, tags, include_tags=include_tags).items():
            n = min(width, m.numel())
            out[tag][i, :n] = m[:n]
    return out
