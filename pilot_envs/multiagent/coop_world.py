"""A household :class:`~pilot_envs.alfworld.world.World` with several embodied agents.

Each agent has its own location and hand. The single-agent transitions and text are reused unchanged: an
agent's command runs inside :meth:`CoopWorld.acting`, which loads that agent's location and hand into the
World's ``agent``/``holding`` slots and stores them back afterwards, so every sentence is exactly the
single-agent engine's. Objects in another agent's hand are nowhere in the room (``location`` is None), so
they cannot be taken, used or examined by anyone else.

The team's milestone *stage* is the furthest stage any agent's view reaches
(:func:`pilot_envs.alfworld.milestones.stage` evaluated with that agent in the World's slots): placed
objects are shared state, holding and standing are per agent. With one agent everything equals the
single-agent engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pilot_envs.alfworld import milestones
from pilot_envs.alfworld.scene import Scene, TaskSpec
from pilot_envs.alfworld.world import World
from pilot_envs.core.snapshot import register_state_class

__all__ = ["CoopWorld"]



@register_state_class
class CoopWorld(World):
    """Mutable state of one household shared by ``n_agents`` agents."""

    MUTABLE = (*World.MUTABLE, "positions", "hands", "actor")

    def __init__(self, scene: Scene, n_agents: int, *, legacy: bool = False):
        if n_agents < 1:
            raise ValueError(f"n_agents must be at least 1, got {n_agents}")
        super().__init__(scene, legacy=legacy)
        self.n_agents = n_agents
        self.positions: list[str | None] = [None] * n_agents  # None: the middle of the room
        self.hands: list[str | None] = [None] * n_agents
        self.actor: int | None = None

    def _snapshot_encode(self) -> dict:
        return {**super()._snapshot_encode(), "n_agents": self.n_agents}

    @classmethod
    def _blank(cls, state: dict) -> CoopWorld:
        return cls(state["scene"], state["n_agents"], legacy=state["legacy"])

    # ------------------------------------------------------------------ acting as one agent
    @contextmanager
    def acting(self, i: int) -> Iterator[CoopWorld]:
        """Within the block the World's ``agent``/``holding`` are agent ``i``'s location and hand."""
        if self.actor is not None:
            raise RuntimeError(f"agent {self.actor} is already acting")
        if not 0 <= i < self.n_agents:
            raise IndexError(f"agent index {i} out of range for {self.n_agents} agents")
        self.actor, self.agent, self.holding = i, self.positions[i], self.hands[i]
        try:
            yield self
        finally:
            self.positions[i], self.hands[i] = self.agent, self.holding
            self.actor, self.agent, self.holding = None, None, None

    def execute_as(self, i: int, command: str) -> str | None:
        """Agent ``i`` runs a normalised command; its feedback, or None when nothing happens."""
        with self.acting(i):
            return self.execute(command)

    def admissible_for(self, i: int) -> tuple[str, ...]:
        with self.acting(i):
            return self.admissible_commands()

    def stage_of(self, i: int, task: TaskSpec) -> int:
        """The milestone stage of agent ``i``'s view."""
        with self.acting(i):
            return milestones.stage(self, task)

    def team_stage(self, task: TaskSpec) -> int:
        """The team's stage: the furthest any agent's view reaches."""
        return self.team_cached("stage", lambda: max(self.stage_of(i, task) for i in range(self.n_agents)))

    # ------------------------------------------------------------------ memoisation and hashing
    def cached(self, name: str, fn: Callable[[], object]) -> object:
        # one view: the acting agent's location *and hand* (the hand is per agent here, so it joins the key)
        return self._memoise((name, self.agent, self.holding, self.version), fn)

    def team_cached(self, name: str, fn: Callable[[], object]) -> object:
        """Memoise a value of the whole team's state (every location and hand)."""
        return self._memoise(("team", name, tuple(self.positions), tuple(self.hands), self.version), fn)

    def state_hash(self) -> str:
        return self.team_cached("hash", self._hash)  # type: ignore[return-value]

    def _hash(self) -> str:
        state = (
            self.scene.task_id,
            tuple(self.positions),
            tuple(self.hands),
            tuple(self.location.values()),
            *(tuple(sorted(s)) for s in (self.opened, self.clean, self.hot, self.cool, self.sliced, self.toggled)),
        )
        return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()
