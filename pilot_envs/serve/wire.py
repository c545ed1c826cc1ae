"""What travels between ``pilot-envs serve`` and its clients, as JSON: observations, info and the gym spaces.

Shared by the server (:mod:`pilot_envs.serve.environment`) and the client (:mod:`pilot_envs.remote`), and
imports neither FastAPI nor openenv, so the client stays light.

* numpy arrays become lists, numpy scalars Python numbers, tuples lists (:func:`to_json`);
* the client restores the exact in-process types: observations through the observation space
  (:func:`obs_from_json`), info by turning every list back into a tuple (:func:`info_from_json`; the envs'
  info holds tuples, never lists);
* a space is described by :func:`space_to_json` and rebuilt, equal to the served env's, by :func:`space_from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from pilot_envs.core.spaces import PilotText, TextList

__all__ = ["to_json", "obs_to_json", "obs_from_json", "info_from_json", "space_to_json", "space_from_json"]


_PLAIN = (str, int, float, bool, type(None))


def to_json(x: Any) -> Any:
    """``x`` with numpy values and tuples turned into JSON's types (keys become strings)."""
    if type(x) in _PLAIN:  # the common case first: this runs on every served step
        return x
    if type(x) is tuple or type(x) is list:
        return [v if type(v) in _PLAIN else to_json(v) for v in x]
    if type(x) is dict:
        return {str(k): v if type(v) in _PLAIN else to_json(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    return x


def obs_to_json(obs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in obs.items()}


def _value_from_json(space: spaces.Space, value: Any) -> Any:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping) or set(value) != set(space.spaces):
            raise ValueError(f"expected an object with keys {sorted(space.spaces)}, got {value!r:.200}")
        return {k: _value_from_json(sub, value[k]) for k, sub in space.spaces.items()}
    if isinstance(space, TextList):
        return tuple(str(v) for v in value)
    if isinstance(space, spaces.Text):
        return str(value)
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return np.asarray(value, dtype=space.dtype).reshape(space.shape)
    if isinstance(space, spaces.Discrete):
        return np.int64(value)
    raise TypeError(f"no JSON decoding for {space!r}")


def obs_from_json(space: spaces.Space, value: Any) -> Any:
    """An observation as the in-process env returns it (tuples, numpy arrays of the space's dtype)."""
    return _value_from_json(space, value)


def info_from_json(value: Any) -> Any:
    """Info as the in-process env returns it: JSON lists become tuples (recursively)."""
    if isinstance(value, list):
        return tuple(info_from_json(v) for v in value)
    if isinstance(value, dict):
        return {k: info_from_json(v) for k, v in value.items()}
    return value


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A complete description of one of the spaces our envs use (``TypeError`` for any other)."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, TextList):
        return {"type": "TextList", "max_items": space.max_items, "item": space_to_json(space.feature_space)}
    if isinstance(space, PilotText):
        return {"type": "PilotText", "max_length": space.max_length, "charset": "".join(sorted(space.character_set))}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": to_json(space.n)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "shape": list(space.shape),
                "dtype": space.dtype.name}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise TypeError(f"pilot-envs serve cannot describe {space!r} (supported: Dict, TextList, PilotText, "
                    "MultiBinary, Box, Discrete)")


def space_from_json(d: Mapping[str, Any]) -> spaces.Space:
    """The space :func:`space_to_json` described (equal to the original)."""
    kind = d.get("type")
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(v) for k, v in d["spaces"].items()})
    if kind == "TextList":
        item = d["item"]
        items = TextList(int(d["max_items"]), int(item["max_length"]))
        items.feature_space = space_from_json(item)
        return items
    if kind == "PilotText":
        return PilotText(int(d["max_length"]), charset=str(d["charset"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if kind == "Box":
        dtype = np.dtype(d["dtype"])
        shape = tuple(d["shape"])
        return spaces.Box(np.asarray(d["low"], dtype=dtype).reshape(shape),
                          np.asarray(d["high"], dtype=dtype).reshape(shape), shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    raise ValueError(f"unknown space description {dict(d)!r:.200}")
