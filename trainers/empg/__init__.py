"""EMPG: entropy-modulated policy gradients on GRPO (confident turns amplified, uncertain ones damped, a bonus for
reaching a confident next turn). Importing the package registers the method and its ``empg`` estimator."""

from trainers.core.registry import METHODS, Method
from trainers.empg import advantage  # noqa: F401  (registers the estimator)
from trainers.empg.config import EMPGConfig
from trainers.empg.trainer import EMPGTrainer
from trainers.grpo.config import GRPOConfig

__all__ = ["EMPGConfig", "EMPGTrainer"]

METHODS.register("empg")(Method(EMPGConfig, EMPGTrainer, page="empg.md", page_base=GRPOConfig))
