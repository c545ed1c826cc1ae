"""Observation and action spaces shared by every text env, with honest charsets and bounds.

Two space classes extend Gymnasium's:

* :class:`PilotText` - a :class:`gymnasium.spaces.Text` with a real charset (printable ASCII plus the
  Latin-1 letters and typographic punctuation that real engines emit) and ``min_length=0``.
* :class:`TextList` - a :class:`gymnasium.spaces.Sequence` of :class:`PilotText` with a maximum number of
  items, so that it has a fixed-size encoding.

Both register shared-memory codecs with :mod:`gymnasium.vector.utils`, which makes
``gym.make_vec(..., vectorization_mode="async")`` correct with its default ``shared_memory=True``.
Gymnasium 1.4 cannot do that on its own: it raises for ``Sequence`` and, for ``Text``, reads the shared
buffer once at construction, so every later observation is stale. Our reader returns a *live* batch
(:class:`SharedTextBatch`) that decodes the buffer when read and turns into a plain tuple of strings
when copied (``AsyncVectorEnv(copy=True)``, the default, deep-copies observations before returning them).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from collections.abc import Sequence as PySequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

from pilot_envs.core.contract import MAX_ACTION_CHARS

__all__ = [
    "CHARSET",
    "PilotText",
    "TextList",
    "SharedTextBatch",
    "observation_space",
    "action_space",
    "sanitize",
]

_EXTRA = "\u00a0" + "".join(chr(c) for c in range(0xA1, 0x100)) + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022"
CHARSET: str = string.printable + _EXTRA
"""Every character an env may put into an observation (engines' other characters become ``?``)."""

_OUTSIDE = re.compile("[^" + re.escape(CHARSET) + "]")

TEXT_MAX = 8192  # longest feedback (a ScienceWorld "look around" is ~2,000 characters)
COMMAND_MAX = 256  # longest single command or plan step


def sanitize(text: str, max_length: int = TEXT_MAX) -> str:
    """Map characters outside :data:`CHARSET` to ``?`` and clip to ``max_length``."""
    if len(text) > max_length:
        text = text[:max_length]
    return _OUTSIDE.sub("?", text) if _OUTSIDE.search(text) else text


class PilotText(spaces.Text):
    """A Text space over :data:`CHARSET` with ``min_length=0``."""

    def __init__(self, max_length: int, *, charset: str = CHARSET, seed: Any = None):
        super().__init__(max_length=max_length, min_length=0, charset=charset, seed=seed)

    def __repr__(self) -> str:
        return f"PilotText(max_length={self.max_length})"


class TextList(spaces.Sequence):
    """A list of strings (returned as a tuple) of at most ``max_items`` items."""

    def __init__(self, max_items: int, item_max_length: int = COMMAND_MAX, *, seed: Any = None):
        self.max_items = int(max_items)
        super().__init__(PilotText(item_max_length), stack=False, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, tuple) and len(x) <= self.max_items and super().contains(x)

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[str, ...]:
        if mask is None and probability is None:
            length = int(self.np_random.integers(0, min(self.max_items, 8) + 1))
            return super().sample(mask=(length, None))
        return super().sample(mask=mask, probability=probability)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextList) and self.max_items == other.max_items and super().__eq__(other)

    def __repr__(self) -> str:
        return f"TextList(max_items={self.max_items}, item_max_length={self.feature_space.max_length})"


def observation_space(
    *, num_subgoals: int, max_commands: int, max_plan_steps: int = 64, text_max: int = TEXT_MAX
) -> spaces.Dict:
    """The observation Dict every env in this package uses (the "Observation Space" table of every env card, docs/envs/)."""
    return spaces.Dict(
        {
            "text": PilotText(text_max),
            "task": PilotText(1024),
            "plan": TextList(max_plan_steps),
            "subgoals_done": spaces.MultiBinary(num_subgoals),
            "progress": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            "admissible_commands": TextList(max_commands),
        }
    )


def action_space() -> PilotText:
    """The action space: free text (a command, tagged LLM output or ReAct text)."""
    return PilotText(MAX_ACTION_CHARS)


# ----------------------------------------------------------------------------------------------------
# Shared-memory codecs for AsyncVectorEnv (see the module docstring).
# A string is stored as int32 code points, -1 padded. A TextList is stored as a count per env followed
# by max_items fixed-size strings.


class SharedTextBatch(PySequence):
    """A live, read-only view of ``n`` strings (or lists of strings) in a shared buffer.

    Deep-copying it (what ``AsyncVectorEnv`` does before returning observations) gives a plain tuple.
    """

    def __init__(self, buffer: Any, n: int, decode: Any):
        self._buffer, self._n, self._decode = buffer, n, decode

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self)[i]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._decode(self._buffer, i % self._n)

    def __iter__(self) -> Iterator[Any]:
        return (self._decode(self._buffer, i) for i in range(self._n))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, PySequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __deepcopy__(self, memo: dict) -> tuple[Any, ...]:
        return tuple(self)

    def __copy__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


def _encode(text: str, out: np.ndarray) -> None:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.int32)[: out.shape[0]]
    out[: codes.shape[0]] = codes
    out[codes.shape[0] :] = -1


def _decode(row: np.ndarray) -> str:
    end = int(np.argmin(row >= 0)) if (row < 0).any() else row.shape[0]
    return row[:end].astype(np.int32).tobytes().decode("utf-32-le")


def _view(shared: Any) -> np.ndarray:
    return np.frombuffer(shared.get_obj(), dtype=np.int32)


@create_shared_memory.register(PilotText)
def _create_text(space: PilotText, n: int = 1, ctx: Any = None) -> Any:
    import multiprocessing as mp

    shared = (ctx or mp).Array("i", n * space.max_length)
    _view(shared)[:] = -1
    return shared


@read_from_shared_memory.register(PilotText)
def _read_text(space: PilotText, shared: Any, n: int = 1) -> SharedTextBatch:
    size = space.max_length
    return SharedTextBatch(shared, n, lambda buf, i: _decode(_view(buf)[i * size : (i + 1) * size]))


@write_to_shared_memory.register(PilotText)
def _write_text(space: PilotText, index: int, value: str, shared: Any) -> None:
    size = space.max_length
    _encode(value, _view(shared)[index * size : (index + 1) * size])


def _list_stride(space: TextList) -> int:
    return 1 + space.max_items * space.feature_space.max_length


@create_shared_memory.register(TextList)
def _create_list(space: TextList, n: int = 1, ctx: Any = None) -> Any:
    import multiprocessing as mp

    return (ctx or mp).Array("i", n * _list_stride(space))


@read_from_shared_memory.register(TextList)
def _read_list(space: TextList, shared: Any, n: int = 1) -> SharedTextBatch:
    stride, size = _list_stride(space), space.feature_space.max_length

    def decode(buf: Any, i: int) -> tuple[str, ...]:
        block = _view(buf)[i * stride : (i + 1) * stride]
        count = int(block[0])
        return tuple(_decode(block[1 + k * size : 1 + (k + 1) * size]) for k in range(count))

    return SharedTextBatch(shared, n, decode)


@write_to_shared_memory.register(TextList)
def _write_list(space: TextList, index: int, value: PySequence[str], shared: Any) -> None:
    stride, size = _list_stride(space), space.feature_space.max_length
    block = _view(shared)[index * stride : (index + 1) * stride]
    items = list(value)[: space.max_items]
    block[0] = len(items)
    for k, item in enumerate(items):
        _encode(item, block[1 + k * size : 1 + (k + 1) * size])
