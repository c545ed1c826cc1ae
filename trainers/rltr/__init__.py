"""RLTR: the planner trained alone, on the planner env with a fixed executor, rewarded by plan completeness (no
outcome reward). Importing the package registers the method and its ``planner`` prompt format."""

from trainers.core.registry import METHODS, Method
from trainers.grpo.config import GRPOConfig
from trainers.rltr import prompt  # noqa: F401  (registers the ``planner`` format)
from trainers.rltr.config import RLTRConfig
from trainers.rltr.trainer import RLTRTrainer

__all__ = ["RLTRConfig", "RLTRTrainer"]

METHODS.register("rltr")(Method(RLTRConfig, RLTRTrainer, page="rltr.md", page_base=GRPOConfig))
