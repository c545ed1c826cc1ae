"""Evaluate a policy on a fixed split: success, progress and steps per task type.

Batched: every task of the split is one trajectory, played by a :class:`~trainers.core.rollout.RolloutCollector`
(all active envs in one ``generate`` per turn) at a fixed temperature (0.4 by default, the verl-agent
convention) with its own seeded generator, so evaluating never consumes the training RNG. The result is
``pilot_envs.evaluate``'s :class:`~pilot_envs.evaluate.SplitReport` (``by_type()``, ``table()``), the same
report ``pilot-envs eval`` prints for the scripted agents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import gymnasium as gym
import torch

from pilot_envs.core.contract import text_env
from pilot_envs.evaluate import EpisodeResult, SplitReport
from trainers.core.policy import Policy
from trainers.core.rollout import AgentSpec, RolloutCollector, TaskSpec, Trajectory

__all__ = ["evaluate_policy", "report_metrics", "split_tasks"]


def split_tasks(env: gym.Env, split: str, limit: int | None = None, seed: int = 0, samples: int = 1) -> list[TaskSpec]:
    """``samples`` :class:`TaskSpec` per task of ``split`` (the first ``limit`` of them), each with its own seed
    and group id (0..n*samples-1): the tasks in split order, then again for the next sample."""
    sizes = text_env(env).splits()
    if split not in sizes:
        raise ValueError(f"env has no split {split!r}; it has {sorted(sizes)} (set eval_split=None, or evaluate with "
                         "evaluate_policy on your own TaskSpecs)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    n = sizes[split] if limit is None else min(limit, sizes[split])
    return [TaskSpec(seed=seed + k * n + i, options={"split": split, "task_index": i}, group_id=k * n + i)
            for k in range(samples) for i in range(n)]


def evaluate_policy(
    policy: Policy,
    envs: Sequence[gym.Env],
    agent: AgentSpec,
    tasks: Sequence[TaskSpec],
    *,
    temperature: float = 0.4,
    seed: int = 0,
    env_id: str = "",
    split: str = "",
    autocast: Callable[[], Any] | None = None,
    progress: Callable[[Callable[[], str]], None] | None = None,
) -> tuple[SplitReport, list[Trajectory]]:
    """Play each task once at ``temperature`` and summarise it as a :class:`SplitReport`; ``progress`` (a
    :class:`~trainers.core.progress.Heartbeat`) is offered a status line after every turn."""
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    collector = RolloutCollector(policy, envs, replace(agent, temperature=temperature), generator=gen, autocast=autocast)
    was_training = policy.model.training
    policy.train(False)
    try:
        trajs, _ = collector.collect(tasks, progress=progress)
    finally:
        policy.train(was_training)
    report = SplitReport(env_id, split)
    for t in trajs:
        report.episodes.append(
            EpisodeResult(
                task_id=t.task_id,
                task_type=t.task_type,
                won=t.won,
                progress=t.progress,
                steps=len(t),
                plan_score=t.turns[-1].plan_score if t.turns else 0.0,
                ret=t.total_reward,
            )
        )
    return report, trajs


def report_metrics(report: SplitReport, prefix: str = "eval") -> dict[str, float]:
    """Flat metrics: ``{prefix}/success_rate``, ``{prefix}/progress``, ``{prefix}/steps``, ``{prefix}/return`` (the mean
    episode return), ``{prefix}/plan_score`` (of the last turn's declared plan) and ``{prefix}/success/<task type>``
    for each type."""
    rows = report.by_type()
    out = {
        f"{prefix}/success_rate": rows["all"]["success"],
        f"{prefix}/progress": rows["all"]["progress"],
        f"{prefix}/steps": rows["all"]["steps"],
        f"{prefix}/return": rows["all"]["return"],
        f"{prefix}/plan_score": rows["all"]["plan_score"],
    }
    for t, s in rows.items():
        if t != "all":
            out[f"{prefix}/success/{t}"] = s["success"]
    return out
