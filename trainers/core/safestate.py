"""Nested state (optimizer and RNG state dicts) as JSON plus safetensors: data files that cannot run code.

``torch.save`` pickles, and unpickling a file runs whatever the file says; a checkpoint handed around (or
damaged) must never do that. :func:`save_state` splits a nested structure into a JSON skeleton and a flat
``{key: tensor}`` map written with safetensors; :func:`load_state` rebuilds it. Only these leaves exist:
``None``, ``bool``, ``int``, ``float`` (NaN and infinities included), ``str`` and ``torch.Tensor``, inside
``dict``, ``list`` and ``tuple``; anything else is refused when saving (``TypeError`` naming the path), and a
file that does not decode to exactly this shape is refused when loading (:class:`StateFormatError`).

JSON encoding: a tensor is ``{"__tensor__": key}``; a tuple is ``{"__tuple__": [...]}``; a non-finite float is
``{"__float__": "nan"}``; a dict whose keys are not all plain strings (optimizer states use int keys) is
``{"__dict__": [[key, value], ...]}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = ["StateFormatError", "decode_state", "encode_state", "load_state", "save_state"]

class StateFormatError(ValueError):
    """A state file is damaged or is not in this module's format."""


def encode_state(tree: Any, name: str = "state") -> tuple[Any, dict[str, torch.Tensor]]:
    """``tree`` -> (a JSON-safe skeleton, ``{key: tensor}``); tensors are copied to CPU, contiguous. ``name``
    starts the path that an error for an unsupported value gives (``rng.numpy.tasks``)."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any, path: str) -> Any:
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = x.detach().to("cpu").contiguous().clone()
            return {"__tensor__": key}
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v, f"{path}.{k}") for k, v in x.items()}
            return {"__dict__": [[enc(k, f"{path}<key>"), enc(v, f"{path}[{k!r}]")] for k, v in x.items()]}
        raise TypeError(f"{path} is a {type(x).__name__}: only None, bool, int, float, str, "
                        "tensors, lists, tuples and dicts can be saved without pickling")

    return enc(tree, name), tensors


def decode_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode_state`; :class:`StateFormatError` for anything it would not produce."""

    def dec(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if isinstance(x, dict):
            if len(x) == 1 and "__tensor__" in x:
                key = x["__tensor__"]
                if not isinstance(key, str) or key not in tensors:
                    raise StateFormatError(f"the state names a tensor {key!r} that its tensor file does not hold")
                return tensors[key]
            if len(x) == 1 and "__float__" in x:
                if x["__float__"] not in ("nan", "inf", "-inf"):
                    raise StateFormatError(f"bad non-finite float {x['__float__']!r}")
                return float(x["__float__"])
            if len(x) == 1 and "__tuple__" in x and isinstance(x["__tuple__"], list):
                return tuple(dec(v) for v in x["__tuple__"])
            if len(x) == 1 and "__dict__" in x and isinstance(x["__dict__"], list):
                pairs = x["__dict__"]
                if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                    raise StateFormatError("a '__dict__' entry must be a list of [key, value] pairs")
                return {_hashable(dec(k)): dec(v) for k, v in pairs}
            if any(k.startswith("__") for k in x):
                raise StateFormatError(f"unknown marker in state keys {sorted(k for k in x if k.startswith('__'))}")
            return {k: dec(v) for k, v in x.items()}
        raise StateFormatError(f"unexpected value of type {type(x).__name__} in a state file")

    return dec(skeleton)


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, torch.Tensor)):
        raise StateFormatError(f"a dict key cannot be a {type(key).__name__}")
    return key


def save_state(tree: Any, json_path: str | Path, tensor_path: str | Path) -> None:
    """Write ``tree`` as ``json_path`` (skeleton) + ``tensor_path`` (safetensors). Not atomic by itself:
    write into a temporary directory that is renamed into place (as checkpoints do)."""
    skeleton, tensors = encode_state(tree, Path(json_path).stem)
    save_file(tensors, str(tensor_path))
    Path(json_path).write_text(json.dumps(skeleton, allow_nan=False), encoding="utf-8")


def load_state(json_path: str | Path, tensor_path: str | Path) -> Any:
    """Read what :func:`save_state` wrote; :class:`StateFormatError` naming the file if it is damaged."""
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StateFormatError(f"{tensor_path}: not a readable safetensors file ({exc})") from exc
    try:
        skeleton = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateFormatError(f"{json_path}: not a readable JSON file ({exc})") from exc
    try:
        return decode_state(skeleton, tensors)
    except StateFormatError as exc:
        raise StateFormatError(f"{json_path}: {exc}") from None
