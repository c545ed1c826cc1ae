"""EPO: entropy-regularised policy optimisation as a plug-in on GRPO or PPO (``config.base``)."""

from trainers.core.registry import METHODS, Method
from trainers.epo.config import EPOConfig
from trainers.epo.trainer import EPOGRPOTrainer, EPOMixin, EPOPPOTrainer, make_trainer
from trainers.ppo.config import PPOConfig

__all__ = ["EPOConfig", "EPOGRPOTrainer", "EPOMixin", "EPOPPOTrainer", "make_trainer"]

METHODS.register("epo")(Method(EPOConfig, make_trainer, page="epo.md", page_base=PPOConfig))
