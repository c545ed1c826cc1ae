"""Exact env state snapshots: ``get_state(env)`` / ``set_state(env, snapshot)`` for every env of this package.

A snapshot is plain data: nested dicts, lists, strings, numbers, booleans and None, so it pickles and it writes
as JSON (``json.dumps(snapshot)``) unchanged. Values JSON has no type for are written as one-key dicts whose key
starts with ``~`` (``{"~tuple": [...]}``, ``{"~nd": {...}}`` for a numpy array, ``{"~obj": {...}}`` for an
instance of a class registered here, ...). Decoding only ever builds the registered classes, from their fields:
a snapshot is data, never code (no unpickling, no imports named by the file).

Each env says which of its attributes are configuration (``_snapshot_static``: built by ``__init__`` and never
changed by ``reset``/``step``) and which attributes are child envs with snapshots of their own
(``_snapshot_children``); everything else on the instance is state and is captured. So a new state attribute is
captured without anyone remembering to, and one that cannot be written as data fails the registry-wide snapshot
tests loudly.

``get_state``/``set_state`` here accept a wrapped env: Gymnasium's ``TimeLimit`` (the step count) and the order
checks of Gymnasium and PettingZoo are saved and restored with it, so a restored ``gym.make`` env truncates at the
same step as the original. Other wrappers are passed through and their own state (if any) is not saved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "SNAPSHOT_FORMAT",
    "SnapshotError",
    "Snapshottable",
    "decode",
    "encode",
    "get_state",
    "identity",
    "register_state_class",
    "set_state",
]

SNAPSHOT_FORMAT = "pilot-envs-snapshot/1"


class SnapshotError(ValueError):
    """A snapshot that cannot be restored here (another env, another version, a damaged or foreign file)."""


# ---------------------------------------------------------------------------------------------------------- codec
_CLASSES: dict[str, type] = {}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def register_state_class(cls: type) -> type:
    """Allow instances of ``cls`` in snapshots (a class decorator). They are written as their attributes (or as
    ``cls._snapshot_encode(obj)``) and rebuilt without calling ``__init__`` (or by ``cls._snapshot_decode``)."""
    _CLASSES[cls.__qualname__] = cls
    return cls


def encode(value: Any) -> Any:
    """``value`` as plain JSON data (see the module docstring); a clear ``SnapshotError`` for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"~tuple": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        tag = "~set" if isinstance(value, set) else "~frozenset"
        return {tag: [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("~") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"~dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise SnapshotError(f"cannot write a numpy array of dtype {value.dtype} into a snapshot")
        return {"~nd": {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}}
    if isinstance(value, np.generic):
        return {"~np": {"dtype": value.dtype.str, "value": value.item()}}
    if isinstance(value, np.random.Generator):
        return {"~rng": encode(value.bit_generator.state)}
    cls = type(value)
    if _CLASSES.get(cls.__qualname__) is cls:
        custom = getattr(cls, "_snapshot_encode", None)
        state = custom(value) if custom is not None else _fields(value)
        return {"~obj": {"cls": cls.__qualname__, "state": encode(state)}}
    raise SnapshotError(f"cannot write a {cls.__module__}.{cls.__qualname__} into a snapshot (not plain data)")


def _fields(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return dict(vars(obj))


def decode(data: Any) -> Any:
    """The inverse of :func:`encode`; a ``SnapshotError`` for anything :func:`encode` does not write."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        raise SnapshotError(f"a snapshot holds JSON data, not a {type(data).__name__}")
    if len(data) == 1:
        ((tag, body),) = data.items()
        if tag.startswith("~"):
            return _decode_tagged(tag, body)
    if any(isinstance(k, str) and k.startswith("~") for k in data):
        raise SnapshotError(f"damaged snapshot: unexpected keys {sorted(data)}")
    return {k: decode(v) for k, v in data.items()}


def _decode_tagged(tag: str, body: Any) -> Any:
    try:
        if tag == "~tuple":
            return tuple(decode(v) for v in body)
        if tag == "~set":
            return {decode(v) for v in body}
        if tag == "~frozenset":
            return frozenset(decode(v) for v in body)
        if tag == "~dict":
            return {decode(k): decode(v) for k, v in body}
        if tag == "~nd":
            return np.array(body["data"], dtype=_plain_dtype(body["dtype"])).reshape(body["shape"])
        if tag == "~np":
            return _plain_dtype(body["dtype"]).type(body["value"])
        if tag == "~rng":
            state = decode(body)
            name = state["bit_generator"]
            if name not in _BIT_GENERATORS:
                raise SnapshotError(f"unknown bit generator {name!r}")
            bit_generator = getattr(np.random, name)()
            bit_generator.state = state
            return np.random.Generator(bit_generator)
        if tag == "~obj":
            cls = _CLASSES.get(body["cls"])
            if cls is None:
                raise SnapshotError(f"a snapshot may not build a {body['cls']!r} (not a registered state class)")
            state = decode(body["state"])
            custom = getattr(cls, "_snapshot_decode", None)
            if custom is not None:
                return custom(state)
            if dataclasses.is_dataclass(cls) and (not isinstance(state, dict) or set(state) != {
                    f.name for f in dataclasses.fields(cls)}):
                raise SnapshotError(f"damaged snapshot: a {cls.__qualname__} with the wrong fields")
            obj = object.__new__(cls)
            obj.__dict__.update(state)  # frozen dataclasses too: their fields live in __dict__
            return obj
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SnapshotError(f"damaged snapshot: bad {tag} entry ({err})") from None
    raise SnapshotError(f"damaged snapshot: unknown tag {tag!r}")


def _plain_dtype(name: Any) -> np.dtype:
    dtype = np.dtype(name)
    if dtype.kind not in "biuf":
        raise SnapshotError(f"damaged snapshot: numpy dtype {dtype} is not a number type")
    return dtype


# --------------------------------------------------------------------------------------------------- env support
class Snapshottable:
    """Mixin: ``get_state()`` / ``set_state()`` for an env whose state is its instance attributes.

    Subclasses list their configuration in ``_snapshot_static`` and their child envs in ``_snapshot_children``;
    :meth:`_snapshot_identity` says which env this is (a snapshot restores only into the same env, version and
    settings). Hooks: :meth:`_snapshot_extra` / :meth:`_restore_extra` for state kept outside the attributes.
    """

    _snapshot_static: frozenset[str] = frozenset()
    _snapshot_children: tuple[str, ...] = ()
    _snapshot_episode: str | None = None
    """An attribute that is None until the first ``reset()`` (no episode to snapshot before it)."""

    def get_state(self) -> dict[str, Any]:
        """A snapshot of the whole env state: restore it with :meth:`set_state` (here or in a fresh env made the
        same way, in any process) and every later observation, reward and info equals the original's."""
        if self._snapshot_episode is not None and getattr(self, self._snapshot_episode, None) is None:
            raise gym.error.ResetNeeded("Call reset() before get_state(): there is no episode to snapshot.")
        skip = self._snapshot_static | set(self._snapshot_children)
        fields = {k: v for k, v in vars(self).items() if k not in skip}
        snapshot = {
            "format": SNAPSHOT_FORMAT,
            "env": self._snapshot_identity(),
            "fields": encode(fields),
            "children": {name: get_state(getattr(self, name)) for name in self._snapshot_children},
        }
        snapshot.update(self._snapshot_extra())
        return snapshot

    def set_state(self, snapshot: Mapping[str, Any]) -> None:
        """Restore a snapshot of :meth:`get_state`. Refused with a ``SnapshotError``, before anything changes, when
        it comes from another env id, another pilot-envs version or other settings, or cannot be decoded. A replayed
        restore that does not reach the snapshot's state also raises ``SnapshotError``; the env is then in the
        replayed state (reset it)."""
        check_header(snapshot, self._snapshot_identity())
        fields = decode(snapshot["fields"])
        if not isinstance(fields, dict):
            raise SnapshotError("damaged snapshot: 'fields' is not a mapping")
        children = snapshot.get("children") or {}
        if set(children) != set(self._snapshot_children):
            raise SnapshotError(f"damaged snapshot: child envs {sorted(children)}, expected {list(self._snapshot_children)}")
        for name in self._snapshot_children:
            set_state(getattr(self, name), children[name])
        self._restore_extra(snapshot, fields)
        for key in [k for k in vars(self) if k not in self._snapshot_static and k not in self._snapshot_children]:
            if key not in fields:
                delattr(self, key)
        for key, value in fields.items():
            setattr(self, key, value)
        self._after_restore()

    def _snapshot_identity(self) -> dict[str, Any]:
        spec = getattr(self, "spec", None)
        if isinstance(spec, gym.envs.registration.EnvSpec):
            return identity(spec.id, spec.kwargs)
        cls = type(self)
        args = {"args": list(getattr(self, "_ezpickle_args", ())), **getattr(self, "_ezpickle_kwargs", {})}
        return identity(f"{cls.__module__}:{cls.__qualname__}", args)

    def _snapshot_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, snapshot: Mapping[str, Any], fields: dict[str, Any]) -> None:
        """Restore what lives outside the attributes (a backend's engine); raise ``SnapshotError`` to refuse."""

    def _after_restore(self) -> None:
        """Rebuild what is derived from the restored attributes."""


def identity(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Which env this is: its id (or class), the pilot-envs version and its settings as snapshot data (the
    ``render_mode`` left out: how an env is shown is not part of its state)."""
    import pilot_envs

    settings = {k: v for k, v in kwargs.items() if k != "render_mode"}
    return {"id": name, "version": pilot_envs.__version__, "kwargs": encode(settings)}


def check_header(snapshot: Any, ours: Mapping[str, Any]) -> None:
    """Refuse a snapshot that is not one, or that belongs to another env, version or settings."""
    if not isinstance(snapshot, Mapping) or snapshot.get("format") != SNAPSHOT_FORMAT:
        got = snapshot.get("format") if isinstance(snapshot, Mapping) else type(snapshot).__name__
        raise SnapshotError(f"not a pilot-envs snapshot (format {got!r}, expected {SNAPSHOT_FORMAT!r})")
    theirs = snapshot.get("env")
    if not isinstance(theirs, Mapping) or "fields" not in snapshot:
        raise SnapshotError("damaged snapshot: no 'env' or 'fields' entry")
    if theirs.get("id") != ours["id"]:
        raise SnapshotError(f"this snapshot is of {theirs.get('id')!r}; it cannot be restored into {ours['id']!r}")
    if theirs.get("version") != ours["version"]:
        raise SnapshotError(
            f"this snapshot was taken with pilot-envs {theirs.get('version')}; this is {ours['version']} "
            "(restore it with the version that wrote it)"
        )
    if theirs.get("kwargs") != ours["kwargs"]:
        mine, other = ours["kwargs"], theirs.get("kwargs") or {}
        keys = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
        raise SnapshotError(f"this snapshot is of {ours['id']!r} made with other settings (differ: {keys})")


# ------------------------------------------------------------------------------------------------------ wrappers
def _wrapper_fields(wrapper: Any) -> tuple[str, ...]:
    """The state attributes of the wrappers whose state is known (step counters, order checks)."""
    from gymnasium.wrappers import OrderEnforcing, TimeLimit

    if isinstance(wrapper, TimeLimit):
        return ("_elapsed_steps",)
    if isinstance(wrapper, OrderEnforcing):
        return ("_has_reset",)
    return tuple(k for k in ("_has_reset", "_has_updated", "_has_rendered") if k in vars(wrapper))


def _layers(env: Any) -> tuple[list[Any], Any]:
    """``env``'s wrappers (outermost first) and the env they wrap (the one that has ``get_state``)."""
    wrappers = []
    while not hasattr(type(env), "get_state") and hasattr(env, "env"):
        wrappers.append(env)
        env = env.env
    if not hasattr(type(env), "get_state"):
        raise SnapshotError(f"{type(env).__name__} has no get_state(): its state cannot be snapshotted (snapshots "
                            "cover the registered envs of pilot-envs and its PettingZoo envs)")
    return wrappers, env


def get_state(env: Any) -> dict[str, Any]:
    """A snapshot of ``env`` (a pilot-envs env, bare or wrapped by ``gym.make`` or PettingZoo)."""
    wrappers, inner = _layers(env)
    snapshot = inner.get_state()
    snapshot["wrappers"] = [
        {"type": type(w).__name__, "state": encode({k: getattr(w, k) for k in _wrapper_fields(w)})} for w in wrappers
    ]
    return snapshot


def set_state(env: Any, snapshot: Mapping[str, Any]) -> None:
    """Restore a snapshot of :func:`get_state` into ``env``, wrappers included (see the module docstring)."""
    wrappers, inner = _layers(env)
    saved = snapshot.get("wrappers", []) if isinstance(snapshot, Mapping) else None
    if not isinstance(saved, list) or [s.get("type") for s in saved if isinstance(s, dict)] != [
        type(w).__name__ for w in wrappers
    ]:
        names = [type(w).__name__ for w in wrappers]
        raise SnapshotError(f"this snapshot was taken through other wrappers than {names}")
    inner.set_state(snapshot)
    from gymnasium.wrappers import PassiveEnvChecker

    for wrapper, entry in zip(wrappers, saved, strict=True):
        for key, value in decode(entry["state"]).items():
            if key in _wrapper_fields(wrapper):
                setattr(wrapper, key, value)
        if isinstance(wrapper, PassiveEnvChecker):
            # its one-time checks of the first reset and steps belong to the episode's start, which the restored
            # env never saw (the original passed them); running them mid-episode would fail
            wrapper.checked_reset = wrapper.checked_step = wrapper.checked_data_reuse = True
            wrapper._previous_data = None


def plain(values: Iterable[Any]) -> list[Any]:
    """A list of JSON-native values (numpy scalars made Python numbers), e.g. for transcripts."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]
