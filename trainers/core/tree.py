"""Tree-shaped rollouts: a group's episodes branch from exact env snapshots at chosen turns.

Without it, a group's G episodes play the same task independently and meet in the same env state only by
chance (GiGPO's anchors: equal ``state_hash``). With ``TreeSpec(turns=(t1, .., td), width=k)``, each group
starts ``G / k**d`` episodes; before turn ``t_j`` every running episode is copied ``k - 1`` times: the env state
with :func:`pilot_envs.get_state` / :func:`pilot_envs.set_state` (exact, so the copies act in the very same
state: step groups of k by construction), and the episode so far (turns, history, carried plan). After the last
branch all G episodes run on independently.

Each episode is a whole trajectory, so episode-level group advantages work unchanged; turns before a branch appear
once in every descendant (their copies carry each descendant's outcome, i.e. the turn's gradient is the sum over
its descendants, the tree estimate of its value). Env steps before a branch are taken once for all descendants,
so a tree group costs fewer env steps than G independent episodes (``RolloutStats.env_steps`` counts the steps
actually taken).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pilot_envs import get_state, set_state

__all__ = ["TreeSpec", "branch", "group_members", "group_waves", "plant", "roots_per_group"]


@dataclass(frozen=True)
class TreeSpec:
    """Branch before each turn of ``turns`` (0-based, increasing), ``width`` ways."""

    turns: tuple[int, ...]
    width: int = 2

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a tree needs at least one branching turn")
        if any(t < 1 for t in self.turns) or list(self.turns) != sorted(set(self.turns)):
            raise ValueError(f"tree turns must be increasing and >= 1 (turn 0 is the reset), got {self.turns}")
        if self.width < 2:
            raise ValueError(f"tree width must be >= 2, got {self.width}")

    @property
    def leaves_per_root(self) -> int:
        return self.width ** len(self.turns)


def roots_per_group(spec: TreeSpec, group_size: int) -> int:
    """How many episodes of a group start at the reset; the group size must be a multiple of ``width**depth``."""
    if group_size % spec.leaves_per_root:
        raise ValueError(f"group_size {group_size} is not a multiple of tree_width ** len(tree_turns) = "
                         f"{spec.leaves_per_root}")
    return group_size // spec.leaves_per_root


def group_members(tasks: Sequence[Any]) -> dict[int, list[int]]:
    """Positions of each group's tasks (anything with a ``group_id``), by group id."""
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(t.group_id, []).append(i)
    return groups


def group_waves(tasks: list[Any], n: int) -> Iterator[list[Any]]:
    """Waves of at most ``n`` tasks that never split a group (a tree's episodes branch within their wave)."""
    wave: list[Any] = []
    for members in group_members(tasks).values():
        if len(members) > n:
            raise ValueError(f"tree rollouts play a whole group in one wave: num_envs ({n}) must be at least the "
                             f"group size ({len(members)})")
        if len(wave) + len(members) > n:
            yield wave
            wave = []
        wave.extend(tasks[i] for i in members)
    if wave:
        yield wave


def plant(spec: TreeSpec, eps: Sequence[Any], tasks: Sequence[Any]) -> None:
    """At the reset: each group's first ``roots_per_group`` episodes play, the others wait to be branched into."""
    for members in group_members(tasks).values():
        for i in members[roots_per_group(spec, len(members)):]:
            eps[i].active, eps[i].waiting = False, True


def branch(spec: TreeSpec, eps: Sequence[Any], envs: Sequence[Any], tasks: Sequence[Any]) -> None:
    """Before a branching turn: in every group, copy each episode that is not waiting (running or already
    finished) into ``width - 1`` of the group's waiting episodes, the env state (for a running one) and the episode
    so far. ``envs[i]`` plays ``eps[i]``, which plays ``tasks[i]``."""
    for members in group_members(tasks).values():
        parents = [i for i in members if not eps[i].waiting]
        free = [i for i in members if eps[i].waiting]
        for p in parents:
            snapshot = None
            for _ in range(min(spec.width - 1, len(free))):
                c = free.pop(0)
                if eps[p].active:
                    snapshot = snapshot or get_state(envs[p])
                    set_state(envs[c], snapshot)
                _copy_episode(eps[p], eps[c])


def _copy_episode(parent: Any, child: Any) -> None:
    traj_id = child.traj.traj_id
    src = parent.traj
    child.traj = replace(src, traj_id=traj_id, turns=[replace(t, traj_id=traj_id, extras=dict(t.extras))
                                                      for t in src.turns])
    child.obs, child.info = parent.obs, parent.info
    child.history, child.carried = list(parent.history), parent.carried
    child.active, child.waiting = parent.active, False
