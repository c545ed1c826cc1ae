"""RLTR (arXiv 2508.19598, the idea; no code is public): train the planning module alone, with one objective,
rewarded by tool-use completeness instead of a verifiable final answer.

Here the planning module is the planner of ``planner_executor_v0`` and its "tool calls" are the plan's steps,
which a fixed executor carries out. The env is the planner env (``pilot_envs.multiagent.planner_env.PlannerEnv``
over ``config.env``, the executor ``config.executor``, step limit ``config.step_cap``): one planner turn per
training episode, the executor playing the plan out inside that turn. The reward of the turn is
``completeness_weight * completeness - format_weight * (1 - format)`` (docs/planning.md); GRPO normalises it
within the group of plans written for one task and trains every token of the planner's answers (the executor
has no tokens). Everything else - collect, PPO clip, KL, update, SFT on the oracle's plans - is GRPO's loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

import pilot_envs  # noqa: F401  (registers PilotPlanner-v0)
from trainers.core.policy import Policy
from trainers.grpo.trainer import GRPOTrainer
from trainers.rltr.config import RLTRConfig

__all__ = ["RLTRTrainer"]


class RLTRTrainer(GRPOTrainer):
    """GRPO on the planner env: the planner alone, rewarded by completeness."""

    config_class = RLTRConfig
    name = "rltr"
    config: RLTRConfig

    def __init__(self, config: RLTRConfig, *, env_fn: Callable[[], gym.Env] | None = None,
                 policy: Policy | None = None, accelerator: Any = None) -> None:
        super().__init__(config, env_fn=env_fn or self.planner_env, policy=policy, accelerator=accelerator)

    def planner_env(self) -> gym.Env:
        """The planner's seat over ``config.env`` with the fixed executor (``PilotPlanner-v0``: made by id, so the
        run's transcripts replay with ``pilot-envs replay``)."""
        cfg = self.config
        kwargs = {k: v for k, v in self.env_kwargs().items() if k != "plan_mode"}
        return gym.make("PilotPlanner-v0", env_id=cfg.env, executor=cfg.executor,
                        completeness_weight=cfg.completeness_weight, format_weight=cfg.format_weight,
                        step_cap=cfg.step_cap, **kwargs)
