"""PilotRL: AdaPlan agents (global plan, then think + action, plan revisions) trained by three progressive
GRPO stages: follow given plans, make good plans, both jointly (METHODS.md)."""

from trainers.pilotrl.config import PilotRLConfig
from trainers.pilotrl.judge import PlanJudge, env_judge, load_judge
from trainers.pilotrl.trainer import PilotRLTrainer

__all__ = ["PilotRLConfig", "PilotRLTrainer", "PlanJudge", "env_judge", "load_judge"]
