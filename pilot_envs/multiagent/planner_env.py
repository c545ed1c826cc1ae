"""The planner's seat of ``planner_executor_v0`` as a single-agent Gymnasium env, the executor fixed.

An LLM (or any agent) that writes plans trains on this env with any single-agent trainer: each of its steps is
one planner turn; the fixed executor then plays the executor's turns inside ``step`` until control returns to
the planner or the episode ends. The reward is the plan's **completeness** (docs/planning.md), computed from
the true milestones, plus a format term: no outcome reward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces as gym_spaces

from pilot_envs.agents import Agent
from pilot_envs.core.contract import coerce_text, text_env
from pilot_envs.core.protocol import parse_action
from pilot_envs.core.rewards import finite_number
from pilot_envs.core.task import completeness
from pilot_envs.multiagent.planner_executor import KEEP_ACTION, PlannerExecutorEnv

__all__ = ["EXECUTORS", "PLAN_SPENT", "PlannerEnv", "milestones_left", "numbered_plan"]

PLAN_SPENT = "I have carried out every step of the plan."
"""The request an executor with nothing left to do hands back to the planner (``obs["request"]``)."""


def _follower() -> Agent:
    from pilot_envs.alfworld.follower import PlanFollower

    return PlanFollower()  # type: ignore[return-value]


def milestones_left(info: dict[str, Any]) -> tuple[str, ...]:
    """The milestones not reached yet: the oracle plan of an executor that needs no places."""
    return tuple(g for g, done in zip(info["subgoals"], info["subgoals_done"], strict=True) if not done)


def _located(info: dict[str, Any]) -> tuple[str, ...]:
    from pilot_envs.alfworld.plans import located_plan

    return located_plan(milestones_left(info), info["expert_plan"])


def numbered_plan(steps: Sequence[str]) -> str:
    """``<plan>Step 1: .. Step 2: ..</plan>``, the form the prompts ask for (read back by the protocol's parser)."""
    return "<plan>" + " ".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1)) + "</plan>"


EXECUTORS: dict[str, tuple[Callable[[], Any], Callable[[dict[str, Any]], tuple[str, ...]]]] = {
    "follower": (_follower, _located),
}
"""Named fixed executors: name -> (factory, oracle planner). ``follower`` is the plan follower
(:class:`pilot_envs.alfworld.follower.PlanFollower`, ALFWorld's commands), whose oracle plan names where each
object is (:func:`pilot_envs.alfworld.plans.located_plan`). An executor's ``act(obs, info)`` returns the
executor's text, or None when it has nothing more to do; the oracle planner maps the planner's info to the plan
steps the oracle would write now."""


class PlannerEnv(gym.Env):
    """
    ## Description
    The planner agent of ``planner_executor_v0`` over any registered single-agent text env, with the executor
    held fixed (``executor="follower"``: the plan follower, which carries out the plan literally; or any object
    with ``reset(seed)`` and ``act(obs, info) -> str | None``). Each ``step`` is one planner turn: the text is
    read for ``<plan>Step 1: .. Step 2: ..</plan>`` (or ``<switch>KEEP</switch>``), then the executor acts
    until it hands the turn back (``<replan/>``; when it has nothing left to do, i.e. ``act`` returns None, with
    the request :data:`PLAN_SPENT`; a new subgoal with ``replan_on_subgoal``; every ``replan_every`` turns) or
    the episode ends. A planner turn is one step of the wrapped env (``OK.`` or ``Nothing happens.``), so a
    planner that never writes a usable plan runs into the step limit.

    ## Observation Space
    The planner's ``Dict`` of ``planner_executor_v0`` (``text``, ``task``, ``plan``, ``subgoals_done``,
    ``progress``, ``trigger``, ``request``) plus ``admissible_commands`` (the executor's, which name the places
    a plan can send it to).

    ## Action Space
    ``PilotText(8192)``: free text; any string is safe.

    ## Rewards
    Each planner turn: ``completeness_weight * (C_after - C_before) - format_weight * (1 - format)``. ``C`` is
    the plan's completeness (``pilot_envs.core.task.completeness``): the mean over the task's K milestones of
    (covered + reached) / 2, covered when a step of the planner's latest plan names it in an order that can be
    executed (``info["plan_coverage"]``), reached when the executor reached it (``info["subgoals_done"]``);
    ``C_after`` is taken when the turn comes back to the planner or the episode ends. ``format`` is 1 when the
    turn declared a plan with at least one step (or kept the one in effect). Over an episode the completeness
    part sums to ``completeness_weight`` times the final completeness. The world's own rewards are not paid: no
    outcome reward.

    ## Episode End
    The wrapped env terminates (solved) or truncates (its step limit: every world step of the executor and every
    planner turn counts). Stepping after the end returns reward 0 and the final observation, and warns once,
    like every env of this package.

    ## Information
    The planner's info of ``planner_executor_v0`` (every key of the wrapped env's info, ``trigger``,
    ``world_step`` ...) plus ``completeness`` (so far), ``executor_steps`` (the executor's world steps in this
    step), ``executor_done`` (the executor handed the turn back with nothing left to do) and ``plan_format`` (the
    format term of the turn). ``expert_action`` is the *planner's* oracle answer, ``<plan>..</plan>`` with the
    steps the oracle would write now (for the follower: the milestones not reached yet, each find step naming
    where the object is; otherwise those milestones), None once solved; ``expert_plan`` stays the executor's
    oracle commands.

    ## Arguments
    ```python
    from pilot_envs.multiagent.planner_env import PlannerEnv
    PlannerEnv(
        env_id="PilotALFWorld-v0",      # any single-agent id of pilot_envs.env_ids()
        executor="follower",           # a name of EXECUTORS or an executor object
        completeness_weight=1.0,
        format_weight=0.1,
        replan_every=None, replan_on_subgoal=False,  # when the executor hands the turn back
        step_cap=None,                 # the wrapped env's step limit (its max_episode_steps; None: its own)
        **env_kwargs,                  # passed to gym.make(env_id, ...)
    )
    # or, registered (outside pilot_envs.ENVS): gym.make("PilotPlanner-v0", env_id=..., step_cap=20, ...)
    ```
    With a named executor the env is made again from its id and arguments, so ``pilot-envs replay`` re-runs the
    transcripts of trainers that play it (RLTR).
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(
        self,
        env_id: str = "PilotALFWorld-v0",
        *,
        executor: str | Any = "follower",
        completeness_weight: float = 1.0,
        format_weight: float = 0.1,
        replan_every: int | None = None,
        replan_on_subgoal: bool = False,
        render_mode: str | None = None,
        step_cap: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if step_cap is not None:
            env_kwargs["max_episode_steps"] = step_cap
        self._oracle: Callable[[dict[str, Any]], tuple[str, ...]] = milestones_left
        if isinstance(executor, str):
            if executor not in EXECUTORS:
                raise ValueError(f"unknown executor {executor!r}; known: {sorted(EXECUTORS)} (or pass an object with "
                                 "reset(seed) and act(obs, info))")
            factory, self._oracle = EXECUTORS[executor]
            executor = factory()
        elif not (callable(getattr(executor, "act", None)) and callable(getattr(executor, "reset", None))):
            raise TypeError(f"executor must be a name of {sorted(EXECUTORS)} or an object with reset() and act(), "
                            f"got {type(executor).__name__}")
        self.completeness_weight = finite_number("completeness_weight", completeness_weight)
        self.format_weight = finite_number("format_weight", format_weight)
        self.pe = PlannerExecutorEnv(env_id, replan_every=replan_every, replan_on_subgoal=replan_on_subgoal,
                                     render_mode=render_mode, **env_kwargs)
        self.executor = executor
        self.render_mode = render_mode
        inner: gym_spaces.Dict = self.pe.observation_space("executor")  # type: ignore[assignment]
        planner: gym_spaces.Dict = self.pe.observation_space("planner")  # type: ignore[assignment]
        self.observation_space = gym_spaces.Dict({**planner.spaces, "admissible_commands": inner["admissible_commands"]})
        self.action_space = self.pe.action_space("planner")
        self._base = text_env(self.pe.inner)
        self._done = True
        self._final: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._warned = False
        self._format = 0.0
        self._completeness = 0.0

    # ------------------------------------------------------------------ the text-env contract
    @property
    def domain(self) -> str:
        return self._base.domain

    @property
    def noop_action(self) -> str:
        return KEEP_ACTION

    @property
    def plan_mode(self) -> str:
        return "agent"

    def set_plan_mode(self, mode: str) -> None:
        if mode != "agent":
            raise ValueError("the planner env always plays plan_mode='agent' (the plan is the planner's)")

    def splits(self) -> dict[str, int]:
        return self._base.splits()

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.pe.reset(seed=seed, options=options)
        self.executor.reset(seed=seed)
        self._done, self._final, self._warned, self._format, self._completeness = False, None, False, 0.0, 0.0
        return self._observe(), self._info(0, False)

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._final is None and self._done:
            raise gym.error.ResetNeeded("Call reset() before step().")
        text = coerce_text(action)
        if self._done:
            return self._after_end()
        parsed = parse_action(text)
        had_plan = bool(self.pe.observe("planner")["plan"])
        self._format = 1.0 if (parsed.plan or (parsed.switch == "KEEP" and had_plan)) else 0.0
        self.pe.step(text)
        steps, spent = 0, False
        while self._running() and self.pe.agent_selection == "executor":
            cmd = self.executor.act(self.pe.observe("executor"), self.pe.infos["executor"])
            if cmd is None:  # nothing left to do: hand the turn back (no world step)
                spent = True
                self.pe.step(f"<replan>{PLAN_SPENT}</replan>")
                break
            self.pe.step(coerce_text(cmd))
            steps += 1
        terminated = any(self.pe.terminations.values())
        truncated = not terminated and any(self.pe.truncations.values())
        obs, info = self._observe(), self._info(steps, spent)
        gained = info["completeness"] - self._completeness
        self._completeness = info["completeness"]
        reward = self.completeness_weight * gained - self.format_weight * (1.0 - self._format)
        if terminated or truncated:
            self._done = True
            self._final = (obs, info)
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str | None:
        return self.pe.render() if self.render_mode is not None else None

    def close(self) -> None:
        self.pe.close()

    # ------------------------------------------------------------------ helpers
    def _running(self) -> bool:
        return not (any(self.pe.terminations.values()) or any(self.pe.truncations.values()))

    def _observe(self) -> dict[str, Any]:
        return {**self.pe.observe("planner"), "admissible_commands": self.pe.observe("executor")["admissible_commands"]}

    def _info(self, steps: int, spent: bool) -> dict[str, Any]:
        info = dict(self.pe.infos["planner"])
        info["completeness"] = completeness(info["plan_coverage"], np.asarray(info["subgoals_done"], dtype=bool))
        info["executor_steps"] = steps
        info["executor_done"] = spent
        info["plan_format"] = self._format
        oracle = self._oracle(info) if not info["won"] else ()
        info["expert_action"] = numbered_plan(oracle) if oracle else None
        return info

    def _after_end(self) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self._warned:
            self._warned = True
            gym.logger.warn("step() called after the episode ended: reward 0, call reset() to start a new one.")
        assert self._final is not None
        obs, info = self._final
        terminated = bool(info["won"])
        return obs, 0.0, terminated, not terminated, info
