"""PPO settings: the shared config with a critic, turn-level GAE and batch-normalised advantages."""

from __future__ import annotations

from dataclasses import dataclass

from trainers.core.config import TrainerConfig

__all__ = ["PPOConfig"]


@dataclass
class PPOConfig(TrainerConfig):
    """PPO with a separate critic (see ``trainers.core.value``): values read at the last prompt token of
    each turn, GAE over turns, advantages standardised over the batch."""

    output_dir: str = "runs/ppo"
    """Run directory."""
    advantage: str = "gae"
    """Advantage estimator (``gae`` reads the critic's values)."""
    group_size: int = 1
    """Rollouts per task (PPO needs no groups; larger groups just repeat tasks)."""
    tasks_per_iteration: int = 32
    """Distinct tasks per iteration and process."""
    lam: float = 0.95
    """GAE lambda."""
    normalize_advantages: bool = True
    """Standardise the GAE advantages over the batch."""
    kl_coef: float = 0.01
    """Low-variance KL to the initial (post-SFT) policy (HiPER's actor uses 0.01)."""
    critic_lr: float = 1e-5
    """Critic learning rate (AdamW; HiPER: 1e-5, ten times the actor's)."""
    value_clip: float = 0.2
    """Clip of the value change in the clipped value loss."""
    critic_warmup: int = 0
    """Iterations at the start that train only the critic."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_lr <= 0:
            raise ValueError(f"critic_lr must be > 0, got {self.critic_lr}")
        if self.value_clip <= 0:
            raise ValueError(f"value_clip must be > 0, got {self.value_clip}")
        if self.critic_warmup < 0:
            raise ValueError(f"critic_warmup must be >= 0, got {self.critic_warmup}")
