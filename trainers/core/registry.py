"""Name -> object registries, each holding one kind of thing with one signature.

* :data:`ADVANTAGES`: estimators ``fn(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput``.
* :data:`POLICY_LOSSES`: policy losses matching :class:`trainers.core.losses.PolicyLoss`.
* :data:`METHODS`: training methods, each a :class:`Method` (config class + trainer factory + docs page).
* :data:`FORMATS`: agent prompt formats (:class:`trainers.core.prompts.PromptFormat`, data).

Trainers look entries up by the name in their config and never special-case a name::

    out = ADVANTAGES.get(cfg.advantage)(batch, adv_cfg)

Methods register themselves from their own package (``trainers/<method>/__init__.py``), as do the
estimators and losses a method brings; :func:`discover` imports every package under ``trainers`` once, so a
registry read anywhere (the CLI, config validation, the docs) sees them all and adding a method touches no
central list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["ADVANTAGES", "FORMATS", "METHODS", "POLICY_LOSSES", "Method", "Registry", "discover"]

_CORE_MODULES = ("trainers.core.advantages", "trainers.core.losses", "trainers.core.prompts")
_discovered = False


def discover() -> None:
    """Import the core numerics and every method package under ``trainers`` (once); importing a package
    registers its method and whatever estimators and losses it brings."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in _CORE_MODULES:
        importlib.import_module(module)
    import trainers

    for info in pkgutil.iter_modules(trainers.__path__):
        if info.ispkg and info.name != "core":
            importlib.import_module(f"trainers.{info.name}")


class Registry(Generic[T]):
    """A small mapping from names to objects, filled with :meth:`register`.

    Args:
        kind: what the registry holds, used in error messages ("advantage estimator").
        autoload: call :func:`discover` before the first read (the project's registries); False for a
            standalone registry.
    """

    def __init__(self, kind: str, *, autoload: bool = True) -> None:
        self.kind = kind
        self._autoload = autoload
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
        if self._autoload:
            discover()

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

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order (core entries first, then methods' by package name)."""
        self._load()
        return list(self._entries.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"


@dataclass(frozen=True)
class Method:
    """A training method as the CLI and the docs see it.

    Args:
        config: the config dataclass (a :class:`~trainers.core.config.TrainerConfig` subclass).
        build: ``build(config, **kwargs) -> trainer`` (a trainer class, or a factory such as EPO's).
        page: its page under ``docs/trainers/`` (with a generated config table).
        page_base: a parent config whose unchanged fields the page's table leaves out (None: all fields).
    """

    config: type
    build: Callable[..., Any]
    page: str
    page_base: type | None = None


ADVANTAGES: Registry[Callable[..., Any]] = Registry("advantage estimator")
"""Estimators ``fn(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput``."""

POLICY_LOSSES: Registry[Callable[..., Any]] = Registry("policy loss")
"""Policy losses (:class:`trainers.core.losses.PolicyLoss`)."""

FORMATS: Registry[Any] = Registry("prompt format")
"""Agent prompt formats (:class:`trainers.core.prompts.PromptFormat`) by name."""

METHODS: Registry[Method] = Registry("training method")
"""Training methods by CLI name (``python -m trainers <name>``)."""
