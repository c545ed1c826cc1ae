"""EPO: entropy-regularised policy optimisation as a plug-in on GRPO or PPO (``config.base``)."""

from trainers.epo.config import EPOConfig
from trainers.epo.trainer import EPOGRPOTrainer, EPOMixin, EPOPPOTrainer, make_trainer

__all__ = ["EPOConfig", "EPOGRPOTrainer", "EPOMixin", "EPOPPOTrainer", "make_trainer"]
