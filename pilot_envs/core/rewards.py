"""Reward modes. Dynamics never depend on the mode: a reward is a function of (s, a, s').

* ``sparse``: ``success_reward`` when the task is won, else 0 (ALFWorld's own reward).
* ``progress``: ``success_reward * won + gamma * Phi(s') - Phi(s)`` with ``Phi`` = progress
  (potential-based shaping, Ng et al. 1999: the optimal policy is unchanged; with ``gamma = 1`` the sum
  over an episode telescopes to ``success_reward * won + Phi(s_T) - Phi(s_0)``).
* ``milestone``: ``milestone_bonus`` the first time each subgoal is reached in an episode, plus
  ``success_reward * won`` (MiRA-style).

Every mode subtracts ``invalid_action_penalty`` when the action did nothing (``Nothing happens.``).

Every setting is checked when the config is built (so at ``gym.make``): a real number (``int``, ``float`` or a
numpy scalar; not a bool, not a string), finite, ``invalid_action_penalty >= 0`` and ``0 <= gamma <= 1``;
``milestone_bonus`` may also be None. A wrong type raises ``TypeError``, a wrong value ``ValueError``; both
name the setting.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass

import numpy as np

__all__ = ["REWARD_MODES", "RewardConfig", "reward", "finite_number"]

REWARD_MODES = ("sparse", "progress", "milestone")


@dataclass(frozen=True)
class RewardConfig:
    mode: str = "sparse"
    success_reward: float = 1.0
    invalid_action_penalty: float = 0.0
    gamma: float = 1.0
    milestone_bonus: float | None = None  # None: 1 / number of subgoals

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str):
            raise TypeError(f"reward_mode must be a str, one of {REWARD_MODES}, got {type(self.mode).__name__}")
        if self.mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.mode!r}")
        gamma = finite_number("gamma", self.gamma)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        penalty = finite_number("invalid_action_penalty", self.invalid_action_penalty)
        if penalty < 0:
            raise ValueError(
                f"invalid_action_penalty is subtracted; give it as a non-negative number, got {self.invalid_action_penalty!r}"
            )
        bonus = None if self.milestone_bonus is None else finite_number("milestone_bonus", self.milestone_bonus)
        # frozen: store the checked values as plain floats (numpy scalars and ints in, floats out)
        object.__setattr__(self, "success_reward", finite_number("success_reward", self.success_reward))
        object.__setattr__(self, "invalid_action_penalty", penalty)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "milestone_bonus", bonus)


def finite_number(name: str, value: object) -> float:
    """``value`` as a float when it is a finite real number; else a ``TypeError`` (not a number, or a bool)
    or ``ValueError`` (NaN, infinite) naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float), got {type(value).__name__} {reprlib.repr(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {reprlib.repr(value)}")
    return number


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
