"""PilotRL: AdaPlan agents (global plan, then think + action, plan revisions) trained by three progressive
GRPO stages: follow given plans, make good plans, both jointly (docs/trainers/pilotrl.md)."""

from trainers.core.config import TrainerConfig
from trainers.core.registry import METHODS, Method
from trainers.pilotrl.config import PilotRLConfig
from trainers.pilotrl.judge import PlanJudge, env_judge, load_judge
from trainers.pilotrl.trainer import PilotRLTrainer

__all__ = ["PilotRLConfig", "PilotRLTrainer", "PlanJudge", "env_judge", "load_judge"]

METHODS.register("pilotrl")(Method(PilotRLConfig, PilotRLTrainer, page="pilotrl.md", page_base=TrainerConfig))
