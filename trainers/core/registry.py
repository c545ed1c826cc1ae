"""Name -> function registries for the trainers' numerics.

Trainers look estimators and loss terms up by the name in their config and never special-case a name::

    from trainers.core.registry import ADVANTAGES
    out = ADVANTAGES.get(cfg.advantage)(batch, adv_cfg)

A registry imports the modules that fill it the first time it is read, so importing this module is cheap
and ``ADVANTAGES.get("gae")`` works without importing ``trainers.core.advantages`` first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["ADVANTAGES", "LOSSES", "Registry"]


class Registry(Generic[T]):
    """A small mapping from names to objects (functions), filled with the :meth:`register` decorator.

    Args:
        kind: what the registry holds, used in error messages ("advantage estimator").
        modules: dotted module names imported on first read; importing them registers their entries.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules
        self._loaded = not modules
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name can be registered only once."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        if not self._loaded:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a ``KeyError`` naming the known entries otherwise."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        self._load()
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"


ADVANTAGES: Registry[Callable[..., Any]] = Registry("advantage estimator", ("trainers.core.advantages",))
"""Estimators ``fn(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput``."""

LOSSES: Registry[Callable[..., Any]] = Registry("loss term", ("trainers.core.losses",))
"""Pure loss terms on token tensors ``[B, T]`` with a mask (see ``trainers.core.losses``)."""
