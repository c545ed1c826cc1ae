"""pilot-envs: Gymnasium text environments with plan/subgoal structure and dense progress rewards.

Importing the package registers every env id with Gymnasium and does nothing else.
"""

from __future__ import annotations

from pilot_envs.core.snapshot import SnapshotError, get_state, set_state
from pilot_envs.registration import ENVS, env_ids, register_envs

__version__ = "0.1.0"
__all__ = ["ENVS", "SnapshotError", "env_ids", "get_state", "register_envs", "set_state", "__version__"]

register_envs()
