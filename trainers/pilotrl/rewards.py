"""PilotRL's stage rewards, as pure functions of a recorded trajectory.

One trajectory's reward in stage s (docs/methods.md, "PilotRL"; weights are config fields)::

    R = w_outcome * outcome + w_follow * follow [stage 1] + w_plan * plan [stages 2, 3]
        + w_format * format + w_overlong * sum_t overlong(L_t)

- ``outcome``: the env return, sum_t r_t (with ``reward_mode="progress"``: ``success_reward * won`` + the
  progress gained - ``invalid_action_penalty`` per invalid action), exactly the GRPO baseline's reward;
- ``follow`` (stage 1): plan following, ``plan_step / len(plan)`` of the plan in effect after the last turn
  (the oracle plan: the fraction of its steps achieved in order);
- ``plan`` (stages 2, 3): with ``plan_reward="score"`` (the default) the judge's score of the agent's plan,
  averaged over the turns of the episode: a plan is judged once, on the turn it is declared, and its score
  counts for every turn it stays in effect (turns before any plan count 0); with ``plan_reward="completeness"``
  the completeness after the last turn (:func:`plan_completeness`): the mean over the K milestones of
  (covered + reached) / 2, covered = the plan in effect names the milestone in an executable order, reached =
  whoever acted (stage 2: the frozen stage-1 executor) reached it;
- ``format``: the fraction of turns in AdaPlan form (:func:`adaplan_format_ok`);
- ``overlong``: DAPO's soft overlong penalty of each response's policy-token length ``L_t``,
  min(-(L - (Lmax - B)) / B, 0) (``trainers.core.losses.overlong_penalty``).

Plan following is not part of stage 3: with the agent's own plan it can be gamed (a plan whose steps match
no milestone, or only the first one, is "fully followed"); the plan score already rewards a plan that
covers the task. The per-turn reward list gives each turn its weighted env reward and overlong penalty, and
adds the episode-level terms (follow, plan, format) to the last turn, so the GRPO return (the sum) is R.

What a turn must carry in ``Turn.extras`` (the PilotRL collector records it, keys from
:mod:`trainers.pilotrl.collect`): ``TASK`` (goal sentence), ``PLAN_SHOWN`` (plan in the prompt the turn
answered), ``PLAN`` (plan in effect after the step), ``DECLARED`` (the turn wrote a ``<plan>``),
``NUM_SUBGOALS``, ``COVERAGE`` and ``DONE`` (for the completeness plan reward); and ``POLICY_TOKENS`` (tokens the
policy itself wrote: the planner's part in stage 2) when it
differs from the response length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from pilot_envs.core.protocol import parse_action
from pilot_envs.core.task import completeness
from trainers.core.rewards import overlong_penalty
from trainers.core.rollout import Trajectory, Turn
from trainers.pilotrl.collect import COVERAGE, DECLARED, DONE, NUM_SUBGOALS, PLAN, PLAN_SHOWN, POLICY_TOKENS, TASK
from trainers.pilotrl.judge import PlanJudge, env_judge, safe_score

__all__ = ["PLAN_REWARDS", "STAGE_TERMS", "RewardWeights", "adaplan_format_ok", "judge_info", "plan_completeness",
           "plan_follow", "plan_quality", "trajectory_reward"]

PLAN_REWARDS = ("score", "completeness")
"""What the ``plan`` term of stages 2 and 3 measures (``PilotRLConfig.plan_reward``)."""

STAGE_TERMS: dict[int, tuple[str, ...]] = {
    1: ("outcome", "follow", "format", "overlong"),
    2: ("outcome", "plan", "format", "overlong"),
    3: ("outcome", "plan", "format", "overlong"),
}
"""Which reward terms each stage uses."""


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (a term a stage does not use is ignored there)."""

    outcome: float = 1.0
    follow: float = 1.0
    plan: float = 1.0
    format: float = 1.0
    overlong: float = 1.0


def adaplan_format_ok(text: str, *, needs_plan: bool) -> bool:
    """A response in AdaPlan form: well-formed tags (each at most once, closed), a ``<think>``, an
    ``<action>`` with a command, and, when the prompt showed no plan, a non-empty ``<plan>``."""
    parsed = parse_action(text)
    if parsed.kind != "command" or not parsed.format_ok or parsed.style != "tags" or parsed.think is None:
        return False
    return bool(parsed.plan) or not needs_plan


def plan_follow(traj: Trajectory) -> float:
    """``plan_step / len(plan)`` after the last turn (0 without a plan)."""
    if not traj.turns:
        return 0.0
    last = traj.turns[-1]
    plan = last.extras.get(PLAN, ())
    return min(1.0, last.plan_step / len(plan)) if plan else 0.0


def judge_info(turn: Turn) -> dict[str, Any]:
    """What a judge is told about the turn a plan was declared at (see :mod:`trainers.pilotrl.judge`)."""
    return {
        "progress": turn.progress,
        "plan_score": turn.plan_score,
        "plan_step": turn.plan_step,
        "won": turn.won,
        "action_valid": turn.action_valid,
        "format_ok": turn.format_ok,
        "observation": turn.observation,
        "response": turn.response_text,
        "command": turn.command,
        "turn_idx": turn.turn_idx,
        "num_subgoals": turn.extras.get(NUM_SUBGOALS, 0),
    }


def plan_quality(traj: Trajectory, judge: PlanJudge = env_judge) -> float:
    """Mean over turns of the judged score of the plan in effect after each turn (see the module docstring)."""
    if not traj.turns:
        return 0.0
    total, score, current = 0.0, 0.0, ()
    for turn in traj.turns:
        plan = tuple(turn.extras.get(PLAN, ()))
        if plan != current or turn.extras.get(DECLARED, False):
            current = plan
            score = safe_score(judge(str(turn.extras.get(TASK, "")), plan, judge_info(turn))) if plan else 0.0
        total += score
    return total / len(traj.turns)


def plan_completeness(traj: Trajectory) -> float:
    """Completeness after the last turn (``pilot_envs.core.task.completeness``): the milestones the plan in effect
    covers in an executable order (:data:`COVERAGE`) and those reached (:data:`DONE`), each half of the score; 0
    without turns or milestones."""
    if not traj.turns:
        return 0.0
    last = traj.turns[-1].extras
    return completeness(tuple(last.get(COVERAGE, ())), tuple(last.get(DONE, ())))


def _policy_tokens(turn: Turn) -> int:
    return int(turn.extras.get(POLICY_TOKENS, sum(turn.response_mask)))


def trajectory_reward(
    traj: Trajectory,
    stage: int,
    weights: RewardWeights,
    *,
    judge: PlanJudge = env_judge,
    max_len: int,
    overlong_buffer: int,
    plan_reward: str = "score",
) -> tuple[list[float], dict[str, float]]:
    """Per-turn rewards of one trajectory in ``stage`` and the unweighted terms (for logging).

    Args:
        traj: a recorded trajectory whose turns carry the extras listed in the module docstring.
        stage: 1, 2 or 3.
        weights: the term weights.
        judge: the plan judge (stages 2, 3).
        max_len: Lmax of the overlong penalty (the response limit, ``max_new_tokens``).
        overlong_buffer: its buffer B (0 disables the penalty).
        plan_reward: what the plan term measures (:data:`PLAN_REWARDS`): the judge's ``score`` or ``completeness``.
    """
    if stage not in STAGE_TERMS:
        raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
    if plan_reward not in PLAN_REWARDS:
        raise ValueError(f"plan_reward must be one of {PLAN_REWARDS}, got {plan_reward!r}")
    terms = STAGE_TERMS[stage]
    turns = traj.turns
    if not turns:
        return [], {}
    if overlong_buffer > 0:
        lengths = torch.tensor([_policy_tokens(t) for t in turns], dtype=torch.float32)
        over = overlong_penalty(lengths, max_len, overlong_buffer).tolist()
    else:
        over = [0.0] * len(turns)
    parts: dict[str, float] = {
        "outcome": float(sum(t.reward for t in turns)),
        "format": sum(adaplan_format_ok(t.response_text, needs_plan=not t.extras.get(PLAN_SHOWN)) for t in turns)
        / len(turns),
        "overlong": float(sum(over)),
    }
    if "follow" in terms:
        parts["follow"] = plan_follow(traj)
    if "plan" in terms:
        parts["plan"] = plan_quality(traj, judge) if plan_reward == "score" else plan_completeness(traj)
    w: Mapping[str, float] = {k: getattr(weights, k) for k in terms}
    rewards = [w["outcome"] * t.reward + w["overlong"] * o for t, o in zip(turns, over, strict=True)]
    rewards[-1] += sum(w[k] * parts[k] for k in terms if k in ("follow", "plan", "format"))
    return rewards, parts
