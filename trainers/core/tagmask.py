"""Which response tokens belong to which tag span (``<plan>..</plan>``, ``<action>..</action>`` ...).

Trainers that train only some parts of a response (PilotRL: plan tokens or action tokens per stage; HiPER:
a different advantage on the ``<switch>``, ``<subgoal>`` and ``<action>`` spans) need, per response token,
the tag span it falls in. Tokens do not line up with characters (BPE merges, byte fallback, a tag split into
``<``, ``action``, ``>``), so the mapping goes through character offsets:

1. :func:`token_char_spans`: the character span of every token in ``decode(response_ids)``, found by
   decoding growing prefixes (the end of token k is the longest common prefix of ``decode(ids[:k+1])``
   and the full text; a multi-byte character split over several tokens belongs to the token that completes
   it). Works for any tokenizer with ``decode``: the tiny word-level one, byte-level BPE
   (GPT-2/Qwen/Llama-3/SmolLM2) and SentencePiece. A fast path re-encodes the text with offsets and uses them
   when the re-encoding gives back exactly ``response_ids``. :func:`token_char_ranges` adds, per token, the
   characters it holds bytes of (*touches*): its span, plus the character whose first bytes it holds when
   later tokens complete it.
2. :func:`tag_char_spans`: the character spans of each tag in the text (case-insensitive, like the env's
   parser; an unclosed tag runs to the end of the text; all occurrences).
3. :func:`tag_token_masks`: a token belongs to a tag when it touches a character of the tag's span (the
   tags themselves included, ``include_tags=True``, or only the content between them): every character of a
   span is covered, every byte of a split character included, and no token outside is marked.

Everything here is pure (no model); the tokenizer is only asked to ``decode`` (and, on the fast path, to
encode with offsets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from pilot_envs.core.protocol import TAGS

__all__ = ["DEFAULT_TAGS", "tag_char_spans", "tag_token_masks", "tag_token_masks_batch", "token_char_ranges",
           "token_char_spans", "token_in_span"]

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


Span = tuple[int, int]


def _fast_ranges(tokenizer: Any, ids: Sequence[int], text: str) -> tuple[list[Span], list[Span]] | None:
    """``(spans, touched)`` from re-encoding ``text`` with offsets, if that gives back exactly ``ids`` (else None).

    The offsets of the tokens of a split multi-byte character all cover that character; the span goes to the
    last of them (as on the decoding path), the earlier ones touch it."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if list(enc["input_ids"]) != list(ids):
        return None
    raw = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    # Offsets may skip leading spaces (trim_offsets); make the spans cover the text contiguously.
    spans, touched, pos = [], [], 0
    for k, (_, e) in enumerate(raw):
        # a next token starting before this one ends shares a character with it: that character is not ours yet
        end = len(text) if k == len(raw) - 1 else max(pos, min(e, raw[k + 1][0]))
        spans.append((pos, end))
        touched.append((pos, max(end, e)))
        pos = end
    return spans, touched


def token_char_ranges(tokenizer: Any, response_ids: Sequence[int]) -> tuple[str, list[Span], list[Span]]:
    """``(text, spans, touched)``: :func:`token_char_spans`'s text and spans, and per token the characters it
    holds bytes of: its span, extended by the character after it when the token holds that character's first
    bytes and later tokens complete it (a token holding only a middle byte touches that one character)."""
    ids = [int(t) for t in response_ids]
    text = _decode(tokenizer, ids)
    if not ids:
        return text, [], []
    fast = _fast_ranges(tokenizer, ids, text)
    if fast is not None:
        return text, *fast
    spans, touched, pos = [], [], 0
    for k in range(len(ids)):
        if k == len(ids) - 1:
            end, pending = len(text), False
        else:
            prefix = _decode(tokenizer, ids[: k + 1])
            common = _common_prefix(prefix, text)
            # decoded past the common prefix: a character begun (a replacement character) but not completed yet
            end, pending = max(pos, common), len(prefix) > common
        spans.append((pos, end))
        touched.append((pos, min(len(text), end + 1) if pending else end))
        pos = end
    return text, spans, touched


def token_char_spans(tokenizer: Any, response_ids: Sequence[int]) -> tuple[str, list[Span]]:
    """``(text, spans)``: the decoded text (special tokens kept) and each token's ``[start, end)`` in it.

    Spans are contiguous and cover the text; a multi-byte character split over several tokens belongs to the
    last of them (the one completing it), so the others (and a token that decodes to nothing) get an empty
    span. :func:`token_char_ranges` also says which characters each token touches.
    """
    text, spans, _ = token_char_ranges(tokenizer, response_ids)
    return text, spans


def token_in_span(touched: Span, span: Span) -> bool:
    """Whether a token touching the characters ``touched`` belongs to the character span ``span``: it touches a
    character of it. An empty span holds no token; a token that touches no character (decodes to nothing) belongs
    to a span it lies strictly inside."""
    (ts, te), (s, e) = touched, span
    if e <= s:
        return False
    if te <= ts:
        return s < ts < e
    return ts < e and te > s


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

    A token is inside a span when it touches one of its characters (:func:`token_in_span`): a token straddling
    a boundary counts for both sides, every token holding a byte of a split multi-byte character counts for
    the span holding the character, an empty span (``<action></action>`` without ``include_tags``) holds no
    token. With ``include_tags`` the ``<tag>`` and ``</tag>`` tokens themselves are included.
    """
    text, _, touched = token_char_ranges(tokenizer, response_ids)
    masks = {}
    for tag in tags:
        m = torch.zeros(len(touched), dtype=torch.bool)
        for span in tag_char_spans(text, tag, include_tags=include_tags):
            for k, t in enumerate(touched):
                if token_in_span(t, span):
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
