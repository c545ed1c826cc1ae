"""RLTR (arXiv 2508.19598, the idea; no code is public): train the planning module alone, with one objective,
rewarded by tool-use completeness instead of a verifiable final answer.

Here the planning module is the planner of ``planner_executor_v0`` and its "tool calls" are the plan's steps,
which a fixed executor carries out. The env is the planner env (``pilot_envs.multiagent.planner_env.PlannerEnv``
over ``config.env``, the executor ``config.executor``, step limit ``config.step_cap``): one planner turn per
training episode, the executor playing the plan out inside that turn. The reward of the turn is
``completeness_weight * completeness - format_weight * (1 - format)`` (docs/planning.md); GRPO normalises it
within the group of plans written for one task and trains every token of the planner's answers (the executor
has no tokens). Everything else - collect, PPO clip, KL, update, SFT on the oracle's plans - is GRPO's loop.

**Env steps count world steps.** A planner turn is one step of the planner env but the executor's world steps
happen inside it: ``env/steps`` (and so ``env_steps_total``, the unit of every equal-budget comparison) counts the
wrapped env's steps, the planner's turn (one world step, ``OK.``) plus the executor's steps in it
(``info["executor_steps"]``), the same unit as a single-agent trainer's turns on the wrapped env.
``env/planner_turns`` counts the planner's turns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

import pilot_envs  # noqa: F401  (registers PilotPlanner-v0)
from trainers.core.policy import Generation, Policy, Sampler
from trainers.core.rollout import RolloutCollector, RolloutStats, Trajectory
from trainers.core.trainer import RLBatch, UpdateStats
from trainers.grpo.trainer import GRPOTrainer
from trainers.rltr.config import RLTRConfig

__all__ = ["COMPLETENESS", "WORLD_STEPS", "PlannerCollector", "RLTRTrainer", "world_steps"]

WORLD_STEPS, COMPLETENESS = "rltr/world_steps", "rltr/completeness"
"""``Turn.extras`` keys of :class:`PlannerCollector`: the wrapped env's steps the planner turn took (its own one
plus the executor's), and the plan's completeness when the turn came back."""


class PlannerCollector(RolloutCollector):
    """The core collector plus, per planner turn, its world steps and the completeness after it."""

    def turn_extras(self, obs: Mapping[str, Any], gen: Generation, result: tuple
                    ) -> tuple[list[int] | None, dict[str, Any]]:
        info = result[4]
        return None, {WORLD_STEPS: 1 + int(info.get("executor_steps", 0)),
                      COMPLETENESS: float(info.get("completeness", 0.0))}


def world_steps(trajs: Sequence[Trajectory]) -> int:
    """The wrapped env's steps played by ``trajs`` (each planner turn's own step plus its executor's steps)."""
    return sum(int(t.extras.get(WORLD_STEPS, 1)) for traj in trajs for t in traj.turns)


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

    def build_collector(self, policy: Sampler) -> RolloutCollector:
        """The collector that records each planner turn's world steps and completeness."""
        return PlannerCollector(policy, self.envs, self.agent, generator=self.generator,
                                autocast=self.accelerator.autocast, renderer=self.build_renderer(policy),
                                tree=self.tree_spec())

    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        """GRPO's metrics with ``env/steps`` in world steps (the module docstring), plus ``env/planner_turns`` and
        ``env/completeness`` (the mean final completeness of the batch's episodes)."""
        m = super().metrics(batch, rollout, update)
        trajs = batch.trajectories
        m["env/planner_turns"] = m["env/steps"]
        m["env/steps"] = float(world_steps(trajs))
        m["env/completeness"] = (sum(float(t.turns[-1].extras.get(COMPLETENESS, 0.0)) for t in trajs if t.turns)
                                 / max(1, len(trajs)))
        return m
