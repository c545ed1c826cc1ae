"""PPO with a separate critic and turn-level GAE."""

from trainers.ppo.config import PPOConfig
from trainers.ppo.trainer import PPOTrainer

__all__ = ["PPOConfig", "PPOTrainer"]
