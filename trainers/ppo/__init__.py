"""PPO: actor-critic with a separate critic and turn-level GAE."""

from trainers.core.registry import METHODS, Method
from trainers.ppo.config import PPOConfig
from trainers.ppo.trainer import PPOTrainer

__all__ = ["PPOConfig", "PPOTrainer"]

METHODS.register("ppo")(Method(PPOConfig, PPOTrainer, page="ppo.md"))
