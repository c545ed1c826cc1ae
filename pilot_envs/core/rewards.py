"""Reward modes. Dynamics never depend on the mode: a reward is a function of (s, a, s').

* ``sparse``: ``success_reward`` when the task is won, else 0 (ALFWorld's own reward).
* ``progress``: ``success_reward * won + gamma * Phi(s') - Phi(s)`` with ``Phi`` = progress
  (potential-based shaping, Ng et al. 1999: the optimal policy is unchanged; with ``gamma = 1`` the sum
  over an episode telescopes to ``success_reward * won + Phi(s_T) - Phi(s_0)``).
* ``milestone``: ``milestone_bonus`` the first time each subgoal is reached in an episode, plus
  ``success_reward * won`` (MiRA-style).

Every mode subtracts ``invalid_action_penalty`` when the action did nothing (``Nothing happens.``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REWARD_MODES", "RewardConfig", "reward"]

REWARD_MODES = ("sparse", "progress", "milestone")


@dataclass(frozen=True)
class RewardConfig:
    mode: str = "sparse"
    success_reward: float = 1.0
    invalid_action_penalty: float = 0.0
    gamma: float = 1.0
    milestone_bonus: float | None = None  # None: 1 / number of subgoals

    def __post_init__(self) -> None:
        if self.mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.mode!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.invalid_action_penalty < 0:
            raise ValueError("invalid_action_penalty is subtracted; give it as a non-negative number")


def reward(
    cfg: RewardConfig,
    *,
    won: bool,
    progress_before: float,
    progress_after: float,
    new_milestones: int,
    num_subgoals: int,
    action_valid: bool,
) -> float:
    """The reward of one step under ``cfg`` (see the module docstring)."""
    r = cfg.success_reward if won else 0.0
    if cfg.mode == "progress":
        r += cfg.gamma * progress_after - progress_before
    elif cfg.mode == "milestone" and new_milestones:
        bonus = cfg.milestone_bonus if cfg.milestone_bonus is not None else 1.0 / max(1, num_subgoals)
        r += bonus * new_milestones
    if not action_valid:
        r -= cfg.invalid_action_penalty
    return float(r)
