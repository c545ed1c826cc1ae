"""PilotRL settings: the shared :class:`~trainers.core.config.TrainerConfig` with PilotRL's defaults (docs/methods.md, "PilotRL":
group 16, temperature 1.0, lr 1e-6, clip 0.2/0.2, no KL, no entropy bonus, token-mean, DAPO overlong
penalty) and the fields of the three stages: their lengths, the reward weights, the plan judge and the
stage-2 executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainers.core.config import TrainerConfig

__all__ = ["PilotRLConfig"]


@dataclass
class PilotRLConfig(TrainerConfig):
    """PilotRL: an AdaPlan agent (global plan, then think + action each turn, plan revisions allowed) trained
    by three GRPO stages: follow given plans, make good plans, both jointly."""

    budget_fields: ClassVar[tuple[str, ...]] = ("iterations", "stage1_iterations", "stage2_iterations",
                                                "stage3_iterations")
    """The stage lengths are the iteration budget (a resumed run may extend them)."""

    output_dir: str = "runs/pilotrl"
    """Run directory."""
    prompt_format: str = "adaplan"
    """Agent format (PilotRL's AdaPlan: ``<plan>`` on the first turn, then ``<think>`` + ``<action>``)."""
    plan_mode: str | None = "agent"
    """Plan mode of evaluation and SFT (the agent writes its own plan). Training overrides it per stage:
    stage 1 plays ``oracle`` (the env's plan in the prompt), stages 2 and 3 play ``agent``."""
    group_size: int = 16
    """Rollouts per task (PilotRL: 16)."""
    advantage: str = "grpo"
    """Advantage estimator of every stage (GRPO)."""
    kl_coef: float = 0.0
    """KL to the initial policy (PilotRL: none)."""
    max_new_tokens: int = 256
    """Response length limit per turn (a first turn holds the plan, the reasoning and the action)."""
    iterations: int = 0
    """Total RL iterations: always the sum of the three stage lengths (a value given here is replaced)."""

    # ---------------------------------------------------------------------------------------- stages
    stage1_iterations: int = 10
    """Stage 1, follow plans: oracle plans in the prompt; reasoning/action tokens trained (``<plan>`` masked
    out); reward outcome + plan following + format. The paper's epochs per stage are 1, 2, 1."""
    stage2_iterations: int = 20
    """Stage 2, make good plans: the policy writes/revises the plan, the frozen stage-1 executor acts; only
    ``<plan>`` tokens trained; reward outcome + plan score + format."""
    stage3_iterations: int = 10
    """Stage 3, joint: the policy writes plans and acts; all its tokens trained; outcome + plan score + format."""
    frozen_executor: bool = True
    """Stage 2: a frozen copy of the stage-1 policy writes each turn's think/action after the policy's plan
    part (one extra model copy in memory). False: the policy writes the whole response (only its plan
    tokens are still trained)."""

    sft_oracle_fraction: float = 0.5
    """Fraction of the SFT warm start's expert episodes played with the oracle plan in the prompt (the expert
    thinks and acts, as in stage 1); the others write the plan first (as in stages 2, 3 and evaluation)."""

    # --------------------------------------------------------------------------------------- rewards
    outcome_weight: float = 1.0
    """Weight of the outcome: the env return (``success_reward`` on success + progress - invalid penalties)."""
    follow_weight: float = 1.0
    """Stage 1: weight of plan following, ``plan_step / len(plan)`` of the oracle plan at the end."""
    plan_weight: float = 1.0
    """Stages 2, 3: weight of the plan score (the judge's score, averaged over the episode's turns)."""
    format_weight: float = 1.0
    """Weight of the fraction of turns in AdaPlan form (think + action; a plan when none is shown)."""
    overlong_buffer: int = 64
    """DAPO overlong penalty buffer B on each response (Lmax = ``max_new_tokens``); 0 disables it."""
    overlong_weight: float = 1.0
    """Weight of the overlong penalty (0 at L <= Lmax - B, -1 at Lmax)."""
    judge: str = "env"
    """Plan judge: ``env`` (the env-grounded ``info["plan_score"]``) or an import path ``module:function``
    of a callable ``(task, plan_steps, info) -> score in [0, 1]`` (e.g. an LLM judge)."""
    plan_reward: str = "score"
    """The plan term of stages 2 and 3: ``score`` (the judge's score of the plans, averaged over the turns) or
    ``completeness`` (``pilot_envs.core.task.completeness`` at the episode's end: the milestones the plan in effect
    covers in an executable order and those reached by whoever acted - in stage 2 the frozen stage-1 executor;
    the judge is then unused)."""
    sft_plan_source: str = "milestones"
    """The SFT expert's first-turn plan (``trainers.core.sft.PLAN_SOURCES``): ``milestones`` or ``located`` (each
    find step names where the object is: the plan language of the planning setting, docs/planning.md)."""

    def __post_init__(self) -> None:
        stages = (self.stage1_iterations, self.stage2_iterations, self.stage3_iterations)
        if min(stages) < 0 or sum(stages) < 1:
            raise ValueError(f"stage lengths must be >= 0 and sum to >= 1, got {stages}")
        self.iterations = sum(stages)
        super().__post_init__()
        if self.group_size < 2:
            raise ValueError("PilotRL's stages are GRPO: group_size must be >= 2")
        if self.plan_mode != "agent":
            raise ValueError("PilotRL evaluates the agent's own plans: plan_mode must be 'agent' "
                             "(stage 1's oracle plans are set per stage)")
        for name in ("outcome_weight", "follow_weight", "plan_weight", "format_weight", "overlong_weight",
                     "overlong_buffer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.overlong_buffer >= self.max_new_tokens:
            raise ValueError(f"overlong_buffer ({self.overlong_buffer}) must be < max_new_tokens ({self.max_new_tokens}), "
                             "or 0 to disable the overlong penalty")
        if not 0 <= self.sft_oracle_fraction <= 1:
            raise ValueError(f"sft_oracle_fraction must be in [0, 1], got {self.sft_oracle_fraction}")
        if not self.judge:
            raise ValueError("judge must be 'env' or 'module:function'")
        from trainers.core.sft import PLAN_SOURCES
        from trainers.pilotrl.rewards import PLAN_REWARDS

        if self.plan_reward not in PLAN_REWARDS:
            raise ValueError(f"plan_reward must be one of {PLAN_REWARDS}, got {self.plan_reward!r}")
        if self.sft_plan_source not in PLAN_SOURCES:
            raise ValueError(f"sft_plan_source must be one of {sorted(PLAN_SOURCES)}, got {self.sft_plan_source!r}")

    def stage_bounds(self) -> tuple[int, int, int]:
        """Iteration index at which stages 1, 2 and 3 end (exclusive)."""
        a = self.stage1_iterations
        return a, a + self.stage2_iterations, a + self.stage2_iterations + self.stage3_iterations

    def stage_at(self, step: int) -> int:
        """The stage (1, 2, 3) that iteration ``step`` (0-based) belongs to."""
        e1, e2, _ = self.stage_bounds()
        return 1 if step < e1 else 2 if step < e2 else 3
