"""Wrappers over the text envs: integer actions over admissible commands and numeric observations for
classic RL libraries (Stable-Baselines3 / sb3-contrib ``MaskablePPO``). NumPy and Gymnasium only.

The policy classes in :mod:`pilot_envs.wrappers.sb3_policy` need torch and Stable-Baselines3 and are not
imported here.
"""

from __future__ import annotations

from pilot_envs.wrappers.features import bag_of_words, command_features, stable_hash
from pilot_envs.wrappers.sb3 import NO_OP, DiscreteCommands, FeaturizeObservation, make_sb3_env

__all__ = [
    "NO_OP",
    "DiscreteCommands",
    "FeaturizeObservation",
    "make_sb3_env",
    "bag_of_words",
    "command_features",
    "stable_hash",
]
