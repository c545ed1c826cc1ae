"""GRPO settings: the shared :class:`~trainers.core.config.TrainerConfig` with GRPO defaults."""

from __future__ import annotations

from dataclasses import dataclass

from trainers.core.config import TrainerConfig

__all__ = ["GRPOConfig"]


@dataclass
class GRPOConfig(TrainerConfig):
    """GRPO (verl-agent defaults where they exist): groups of 8 rollouts per task, the episode return
    normalised within the group as every token's advantage, PPO clip 0.2, KL 0.01 to the initial policy."""

    output_dir: str = "runs/grpo"
    """Run directory."""
    advantage: str = "grpo"
    """Advantage estimator (``grpo``; ``rloo`` and ``gigpo`` are drop-in alternatives)."""
    group_size: int = 8
    """Rollouts per task; the group is the baseline."""
    kl_coef: float = 0.01
    """Low-variance KL to the initial (post-SFT) policy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 2:
            raise ValueError("GRPO needs group_size >= 2 (a group of one has no baseline: every advantage is 0)")
