"""Pure, stable text featurisation for classic RL agents: hashed bags of words and per-command features.

Everything here is a function of its arguments (no global state, no randomness) and uses a *stable*
hash (CRC-32 of the UTF-8 token, :func:`stable_hash`), never Python's per-process salted ``hash()``,
so the same text gives the same vector in every process, run and machine.

Tokens are lower-case runs of letters or of digits (``"soapbar 1."`` -> ``soapbar``, ``1``); a bag of
words holds each token and each pair of adjacent tokens (``soapbar 1`` names one object instance).
A vector entry is 1.0 when some token hashed to it, else 0.0 (presence, so every value is in [0, 1]).

Per-command ("slot") features, :func:`command_features`, tell a policy what each admissible command
means *relative to the current situation*, because a slot's command changes from step to step:

=========================  ====================================================================================
column                     meaning
=========================  ====================================================================================
``0 .. dim-1``             hashed bag of words of the command; its verb (first word) also as ``verb=<word>``
``rel_task``               share of the command's content words that occur in the goal sentence
``rel_text``               share of the command's object instances (``mug 1``) named in the latest feedback
``rel_plan``               share of the command's content words in the current plan step (0 without a plan)
``executed``               how often this exact command was executed this episode (0, 1/3, 2/3, 1 for >= 3)
``last``                   1 when it is the command executed on the previous step
``present``                1 for a real command, 0 for a padding slot
=========================  ====================================================================================
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np

__all__ = [
    "RELATION_NAMES",
    "STOP_WORDS",
    "stable_hash",
    "tokens",
    "content_words",
    "instances",
    "bag_of_words",
    "command_features",
]

RELATION_NAMES: tuple[str, ...] = ("rel_task", "rel_text", "rel_plan", "executed", "last", "present")
"""Names of the relational columns :func:`command_features` appends after the hashed bag of words."""

STOP_WORDS = frozenset(
    {
        "a", "an", "the", "to", "of", "in", "on", "at", "with", "from", "into", "onto",
        "and", "then", "it", "them", "some", "your", "you", "up", "for", "by", "is", "are",
    }
)
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_INSTANCE = re.compile(r"([a-z]+) ([0-9]+)")


@lru_cache(maxsize=1 << 16)
def stable_hash(token: str) -> int:
    """CRC-32 of the token's UTF-8 bytes: the same in every process (unlike the salted built-in ``hash``)."""
    return zlib.crc32(token.encode("utf-8"))


@lru_cache(maxsize=1 << 14)
def tokens(text: str) -> tuple[str, ...]:
    """Lower-case tokens: runs of letters or of digits."""
    return tuple(_TOKEN.findall(text.lower()))


@lru_cache(maxsize=1 << 14)
def content_words(text: str) -> frozenset[str]:
    """Tokens that carry meaning: no stop words, no numbers."""
    return frozenset(t for t in tokens(text) if t not in STOP_WORDS and not t.isdigit())


@lru_cache(maxsize=1 << 14)
def instances(text: str) -> frozenset[str]:
    """Object instances named in the text: a word followed by a number (``"mug 1"``)."""
    return frozenset(f"{w} {n}" for w, n in _INSTANCE.findall(" ".join(tokens(text))))


@lru_cache(maxsize=1 << 14)
def _buckets(text: str, dim: int, ngrams: int, verb: bool) -> tuple[int, ...]:
    toks = tokens(text)
    grams = list(toks)
    for n in range(2, ngrams + 1):
        grams.extend(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
    if verb and toks:
        grams.append(f"verb={toks[0]}")
    return tuple(sorted({stable_hash(g) % dim for g in grams}))


def bag_of_words(texts: str | Iterable[str], dim: int, *, ngrams: int = 2, verb: bool = False) -> np.ndarray:
    """Hashed presence vector (``float32``, values 0 or 1) of the tokens and n-grams of ``texts``.

    ``ngrams`` is the longest n-gram hashed (1: words only). With ``verb``, each text's first word is also
    hashed as ``verb=<word>`` so that the action a command names is told apart from the same word
    elsewhere. N-grams never span two texts of an iterable.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    out = np.zeros(dim, dtype=np.float32)
    for text in [texts] if isinstance(texts, str) else texts:
        out[list(_buckets(text, dim, ngrams, verb))] = 1.0
    return out


def _share(part: frozenset[str], whole: frozenset[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


def command_features(
    commands: Sequence[str],
    *,
    slots: int,
    dim: int,
    task: str,
    text: str,
    plan_step: str = "",
    counts: Mapping[str, int] | None = None,
    last: str = "",
    ngrams: int = 2,
) -> np.ndarray:
    """A ``(slots, dim + len(RELATION_NAMES))`` ``float32`` array: one row per command slot.

    Row ``i`` describes ``commands[i]`` (module docstring); rows past ``len(commands)`` are zero.
    ``counts`` maps a command to how often it was executed this episode; ``last`` is the previous one.
    """
    if len(commands) > slots:
        raise ValueError(f"{len(commands)} commands do not fit in {slots} slots")
    counts = counts or {}
    out = np.zeros((slots, dim + len(RELATION_NAMES)), dtype=np.float32)
    task_words, text_inst, plan_words = content_words(task), instances(text), content_words(plan_step)
    for i, cmd in enumerate(commands):
        out[i, list(_buckets(cmd, dim, ngrams, True))] = 1.0
        words = content_words(cmd)
        out[i, dim:] = (
            _share(words, task_words),
            _share(instances(cmd), text_inst),
            _share(words, plan_words),
            min(counts.get(cmd, 0), 3) / 3.0,
            float(cmd == last and bool(last)),
            1.0,
        )
    return out
