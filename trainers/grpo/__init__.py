"""GRPO: group-relative policy optimisation for multi-turn agents (episode-level group advantages)."""

from trainers.core.registry import METHODS, Method
from trainers.grpo.config import GRPOConfig
from trainers.grpo.trainer import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer"]

METHODS.register("grpo")(Method(GRPOConfig, GRPOTrainer, page="grpo.md"))
