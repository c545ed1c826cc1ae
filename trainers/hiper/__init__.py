"""HiPER: hierarchical plan-execute RL with hierarchical advantage estimation and a three-head critic."""

from trainers.hiper.config import HiPERConfig
from trainers.hiper.trainer import HiPERTrainer

__all__ = ["HiPERConfig", "HiPERTrainer"]
