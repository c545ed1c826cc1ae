"""GRPO: group-relative policy optimisation for multi-turn agents (episode-level group advantages)."""

from trainers.grpo.config import GRPOConfig
from trainers.grpo.trainer import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer"]
