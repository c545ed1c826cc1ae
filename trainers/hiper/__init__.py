"""HiPER: hierarchical plan-execute RL with hierarchical advantage estimation and a three-head critic.

Importing the package registers the method, its ``hiper`` prompt format and its ``hae`` estimator."""

from trainers.core.registry import METHODS, Method
from trainers.hiper import hae, prompt  # noqa: F401  (register the estimator and the prompt format)
from trainers.hiper.config import HiPERConfig
from trainers.hiper.trainer import HiPERTrainer
from trainers.ppo.config import PPOConfig

__all__ = ["HiPERConfig", "HiPERTrainer"]

METHODS.register("hiper")(Method(HiPERConfig, HiPERTrainer, page="hiper.md", page_base=PPOConfig))
