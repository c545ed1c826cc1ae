"""RLTR settings: GRPO's loop on the planner env (``pilot_envs.multiagent.planner_env.PlannerEnv``), one planner
turn per training episode, the executor fixed, the reward the plan's completeness plus a format term."""

from __future__ import annotations

from dataclasses import dataclass

from trainers.grpo.config import GRPOConfig

__all__ = ["RLTRConfig"]


@dataclass
class RLTRConfig(GRPOConfig):
    """RLTR: only the planner is trained (group-relative advantages over plans for one task), the executor is held
    fixed, and the reward is completeness - which required milestones the plan covers in an executable order
    and which of them the executor then reached - plus a format term; no outcome reward."""

    output_dir: str = "runs/rltr"
    """Run directory."""
    env: str = "PilotALFWorld-v0"
    """The text env under the planner env: full-size rooms, where the search order decides (docs/planning.md)."""
    executor: str = "follower"
    """The fixed executor (a name of ``pilot_envs.multiagent.planner_env.EXECUTORS``): ``follower`` carries out the
    plan literally."""
    step_cap: int = 20
    """The wrapped env's step limit (every executor step and every planner turn counts): 20 is where the plan
    decides the outcome (docs/planning.md)."""
    completeness_weight: float = 1.0
    """Weight of the completeness gain of each planner turn."""
    format_weight: float = 0.1
    """Penalty of a planner turn that declares no plan."""
    prompt_format: str = "planner"
    """The planner's format: one answer, ``<plan>Step 1: .. </plan>``."""
    history_window: int = 0
    """The planner's first turn has no history."""
    max_turns: int = 1
    """Planner turns per training episode: 1 trains the first plan (the executor plays it out in that turn)."""
    eval_max_turns: int | None = 1
    """Planner turns per evaluation episode (more lets the planner replan when its plan is spent)."""
    max_new_tokens: int = 160
    """A plan with places is longer than a command."""
    stop_strings: tuple[str, ...] = ("</plan>",)
    """The answer ends with its plan."""
    sft_think: str = "default"
    """Unused by the planner format (it has no reasoning part)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.step_cap < 2:
            raise ValueError(f"step_cap must be >= 2 (the planner's turn is one step), got {self.step_cap}")
        for name in ("completeness_weight", "format_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        from pilot_envs.multiagent.planner_env import EXECUTORS

        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; known: {sorted(EXECUTORS)}")
        if self.plan_mode not in (None, "agent"):
            raise ValueError("the planner env plays plan_mode='agent' (the planner's own plan)")
