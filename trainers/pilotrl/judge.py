"""Plan judges: (task text, plan steps, trajectory info) -> score in [0, 1].

PilotRL's stage 2 and 3 rewards contain a *plan score*. The paper asks a remote LLM for it; here the default
judge is environment-grounded and free (our decision, docs/methods.md "PilotRL"): the env already scores the plan the agent
declared against the task's true milestones (coverage in order, a mild penalty for padding,
``info["plan_score"]``), so :func:`env_judge` just reads it.

Any callable with the :class:`PlanJudge` signature can replace it, e.g. an LLM judge::

    def my_judge(task: str, plan: Sequence[str], info: Mapping[str, Any]) -> float:
        reply = client.chat(f"Task: {task}\\nPlan: {plan}\\nRate correctness, followability and form 1-5 ...")
        return (parse_scores(reply) - 1) / 4

and is named on the command line as an import path: ``--judge mypkg.judges:my_judge``. Scores are clipped
to [0, 1]; a judge that returns NaN counts as 0.

``info`` is what the trainer knows about the turn the plan was in effect after: the env's per-step info
fields recorded by the rollout (``progress``, ``plan_score``, ``plan_step``, ``won``, ``action_valid``,
``format_ok``), plus ``observation`` (the feedback the turn answered), ``response`` (the model's text),
``command``, ``turn_idx`` and ``num_subgoals``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ENV_JUDGE", "PlanJudge", "env_judge", "load_judge", "safe_score"]

ENV_JUDGE = "env"
"""The config value naming :func:`env_judge`."""


@runtime_checkable
class PlanJudge(Protocol):
    """Scores a plan for a task: ``judge(task, plan, info) -> float in [0, 1]``."""

    def __call__(self, task: str, plan: Sequence[str], info: Mapping[str, Any]) -> float: ...


def env_judge(task: str, plan: Sequence[str], info: Mapping[str, Any]) -> float:
    """The environment-grounded judge: ``info["plan_score"]`` (0 for an empty plan)."""
    if not plan:
        return 0.0
    return float(info.get("plan_score", 0.0))


def safe_score(x: Any) -> float:
    """A judge's answer as a float in [0, 1] (NaN and non-numbers count as 0)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(v) else min(1.0, max(0.0, v))


def load_judge(spec: str | Callable[..., float]) -> PlanJudge:
    """``"env"`` -> :func:`env_judge`; ``"package.module:function"`` -> that callable; a callable passes through."""
    if callable(spec):
        return spec  # type: ignore[return-value]
    if spec == ENV_JUDGE:
        return env_judge
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"judge must be 'env' or an import path 'module:function', got {spec!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"judge {spec!r} is not callable")
    return obj
