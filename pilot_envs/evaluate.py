"""Evaluate an agent on a whole split and report success, progress and steps per task type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from pilot_envs.agents import Agent
from pilot_envs.core.contract import text_env
from pilot_envs.replay import TranscriptRecorder, write_transcripts

__all__ = ["EpisodeResult", "SplitReport", "evaluate", "split_size"]


@dataclass(frozen=True)
class EpisodeResult:
    task_id: str
    task_type: str
    won: bool
    progress: float
    steps: int
    plan_score: float = 0.0
    ret: float = 0.0
    """The episode's return (sum of its rewards)."""


@dataclass
class SplitReport:
    env_id: str
    split: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    def by_type(self) -> dict[str, dict[str, float]]:
        groups: dict[str, list[EpisodeResult]] = defaultdict(list)
        for e in self.episodes:
            groups[e.task_type].append(e)
        out = {t: _summary(es) for t, es in sorted(groups.items())}
        out["all"] = _summary(self.episodes)
        return out

    def table(self) -> str:
        rows = self.by_type()
        lines = [
            f"{self.env_id} / {self.split}",
            f"| {'task type':34s} | {'n':>4s} | {'success':>7s} | {'progress':>8s} | {'steps':>6s} |",
            f"|{'-' * 36}|{'-' * 6}|{'-' * 9}|{'-' * 10}|{'-' * 8}|",
        ]
        for t, s in rows.items():
            lines.append(
                f"| {t:34s} | {int(s['n']):4d} | {s['success']:7.3f} | {s['progress']:8.3f} | {s['steps']:6.1f} |"
            )
        return "\n".join(lines)


def _summary(es: list[EpisodeResult]) -> dict[str, float]:
    n = max(1, len(es))
    return {
        "n": float(len(es)),
        "success": sum(e.won for e in es) / n,
        "progress": sum(e.progress for e in es) / n,
        "steps": sum(e.steps for e in es) / n,
        "plan_score": sum(e.plan_score for e in es) / n,
        "return": sum(e.ret for e in es) / n,
    }


def split_size(env: gym.Env, split: str) -> int:
    sizes = text_env(env).splits()
    if split not in sizes:
        raise ValueError(f"{env.spec.id if env.spec else env} has no split {split!r}; it has {sorted(sizes)}")
    return sizes[split]


def evaluate(
    env_id: str,
    agent: Agent,
    *,
    split: str = "valid_unseen",
    indices: Iterable[int] | None = None,
    seed: int = 0,
    progress_bar: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    transcripts: str | Path | None = None,
) -> SplitReport:
    """Run ``agent`` once on every task of ``split`` (or the given ``indices``). ``transcripts``: also write every
    episode there as a replayable JSONL transcript (:mod:`pilot_envs.replay`)."""
    env = gym.make(env_id, **(env_kwargs or {}))
    if transcripts is not None:
        env = TranscriptRecorder(env)
    try:
        ids = list(indices) if indices is not None else list(range(split_size(env, split)))
        report = SplitReport(env_id, split)
        iterator: Iterable[int] = ids
        if progress_bar:
            from tqdm import tqdm

            iterator = tqdm(ids, desc=f"{env_id} {split}", unit="task")
        for k, i in enumerate(iterator):
            agent.reset(seed=seed + k)
            obs, info = env.reset(seed=seed + k, options={"split": split, "task_index": i})
            steps, won, ret = 0, False, 0.0
            while True:
                obs, reward, term, trunc, info = env.step(agent.act(obs, info))
                steps += 1
                ret += float(reward)
                won = won or bool(info["won"])
                if term or trunc:
                    break
            report.episodes.append(
                EpisodeResult(info["task_id"], info["task_type"], won, float(info["progress"]), steps, info["plan_score"],
                              ret)
            )
        if transcripts is not None:
            write_transcripts(transcripts, env.episodes)
        return report
    finally:
        env.close()
