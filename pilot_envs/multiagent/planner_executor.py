"""``planner_executor_v0``: a planner writes and revises the global plan, an executor acts in the world."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces as gym_spaces
from gymnasium.utils import EzPickle
from pettingzoo import AECEnv

from pilot_envs.core import spaces
from pilot_envs.core.protocol import parse_action
from pilot_envs.core.rewards import finite_number
from pilot_envs.core.snapshot import Snapshottable
from pilot_envs.multiagent._common import coerce_text, cut_block, forward_options, plan_action, warn_step_after_end
from pilot_envs.registration import env_ids

__all__ = ["PlannerExecutorEnv", "AGENTS", "TRIGGERS", "KEEP_ACTION"]

AGENTS: tuple[str, str] = ("planner", "executor")
TRIGGERS: tuple[str, ...] = ("start", "request", "subgoal", "interval")
"""Why the planner has the turn (the planner observation's ``trigger`` is the index into this tuple)."""
KEEP_ACTION = "<think>keep the plan</think>"  # what the wrapped env is sent when the planner keeps its plan
REQUEST_MAX = 1024


class PlannerExecutorEnv(Snapshottable, AECEnv, EzPickle):
    """
    ## Description
    Two LLM agents share one single-agent task of this package (any registered id, ``PilotALFWorld-v0`` by
    default): a **planner** that writes the global plan and an **executor** that acts in the world with the
    plan in its observation (the planner/executor split of Plan-and-Act, HiPER and PilotRL, as two agents).
    The wrapped env runs with ``plan_mode="agent"``: the plan in effect is the planner's, parsed by the same
    protocol as the single-agent envs' ``<plan>`` (``pilot_envs.core.protocol``).

    Turn-taking (AEC, the planner first):

    1. The planner speaks at the start and whenever control returns to it. Its turn is one step of the
       wrapped env that never changes the world: ``<plan>Step 1: .. Step 2: ..</plan>`` replaces the plan
       (answered ``OK.``); ``<switch>KEEP</switch>`` keeps it (``OK.``); anything else is an invalid turn
       (``Nothing happens.``, the plan is kept). Commands in the planner's text are never executed.
    2. The executor then acts, one world step per turn, until control returns to the planner, which happens
       right after the executor's turn when (a) its text contains ``<replan/>`` or
       ``<replan>reason</replan>`` (the reason is shown to the planner), (b) the turn reached a subgoal
       for the first time in the episode (``replan_on_subgoal``), or (c) it was the ``replan_every``-th
       executor turn since the planner last spoke. The ``<replan>`` markup is removed from the executor's
       text and the rest is executed; a turn that is only ``<replan/>`` takes no world step. The executor
       cannot change the plan: ``<plan>`` blocks in its text are removed.

    Every world step of either agent counts against the wrapped env's step limit (50 by default), which
    therefore bounds the episode.

    ## Agents
    ``["planner", "executor"]``; both act until the episode ends, then both are done.

    ## Action Space
    ``PilotText(8192)`` for both: free text. The executor's text is read exactly as by the single-agent env
    (bare commands, ``<think>/<action>`` tags, ReAct); the planner's is read for ``<plan>`` and ``<switch>``.
    Any string is safe. There are no action masks (Text actions); the executor's admissible commands are in
    its observation.

    ## Observation Space
    Executor: the wrapped env's observation ``Dict`` (``text``, ``task``, ``plan``, ``subgoals_done``,
    ``progress``, ``admissible_commands``), where ``text`` is the latest feedback of the world to the
    executor (a planner turn's ``OK.`` is not shown to it).
    Planner: a ``Dict`` with

    | key | space | meaning |
    |---|---|---|
    | ``text`` | PilotText(8192) | the latest world feedback (what the executor last saw) |
    | ``task`` | PilotText(1024) | the goal sentence |
    | ``plan`` | TextList(64) | the plan in effect (its own latest plan) |
    | ``subgoals_done`` | MultiBinary(K) | milestones reached, in order |
    | ``progress`` | Box(0, 1, (1,)) | milestones reached / number of milestones |
    | ``trigger`` | Discrete(4) | why it has the turn: 0 start, 1 executor request, 2 subgoal reached, 3 interval |
    | ``request`` | PilotText(1024) | the executor's ``<replan>`` reason ("" when none) |

    ## Rewards
    The wrapped env's reward of every step (its ``reward_mode``, ``success_reward``,
    ``invalid_action_penalty``, ...) is the team reward and goes to both agents. The planner additionally
    receives ``plan_reward_weight * (plan_score after - plan_score before)`` on its turns: a difference, so
    it cannot be farmed by replanning, and over an episode it sums to ``plan_reward_weight`` times the score
    of its final plan. An executor turn that takes no world step (``<replan/>`` only) rewards nobody.

    ## Episode End
    ### Termination
    The task is solved (the wrapped env terminates): both agents terminate.
    ### Truncation
    The wrapped env's step limit (its registration's ``max_episode_steps``; pass ``max_episode_steps=..``
    to override): both agents truncate.
    ### After the end
    The wrapped env is never stepped again and no reward is paid. As in every PettingZoo AEC env, each done
    agent then takes one ``step(None)`` (``agent_iter`` does this; any other action raises ``ValueError``),
    which removes it from ``agents``. A ``step`` once ``agents`` is empty does nothing and warns once to call
    ``reset()``. The Parallel view returns empty dicts then (and warns once), like PettingZoo's conversions.

    ## Information
    Every key of the wrapped env's info after the latest step (``won``, ``progress``, ``subgoals``,
    ``subgoals_done``, ``expert_action``, ``expert_plan``, ``action_valid``, ``format_ok``, ``command``,
    ``plan_score``, ``plan_step``, ``plan_coverage``, ``state_hash``, ``task_type``, ``task_id``, ``split`` ...) plus
    ``acting_agent`` (who took the latest turn, None after reset), ``active_agent`` (whose turn it is now),
    ``trigger`` (why the planner has or last had the turn, a name from ``TRIGGERS``), ``world_step`` (whether
    the latest turn stepped the wrapped env), ``team_reward`` (the shared reward of the latest turn),
    ``plan_bonus`` (the planner's extra reward of the latest turn) and ``rewards`` (each agent's reward of
    the latest turn). ``expert_action`` is the executor's oracle command; ``subgoals`` gives the oracle plan.

    ## Snapshots
    ``pilot_envs.get_state(env)`` / ``pilot_envs.set_state(env, snapshot)`` on the AEC env (PettingZoo's wrappers
    included): the turn order, both agents' views and the wrapped single-agent env's own snapshot, as plain data
    (pickles, writes as JSON); restored exactly here or in a fresh env made with the same arguments.

    ## Arguments
    ```python
    from pilot_envs.multiagent import planner_executor_v0
    planner_executor_v0.env(            # AEC; parallel_env(...) takes the same arguments
        env_id="PilotALFWorld-v0",      # any single-agent id of pilot_envs.env_ids()
        replan_every=None,              # give the planner the turn after every k executor turns
        replan_on_subgoal=True,         # ... and whenever a subgoal is reached for the first time
        plan_reward_weight=0.0,         # weight of the planner's plan-score bonus
        render_mode=None,               # "ansi" | "human"
        **env_kwargs,                   # passed to gym.make(env_id, ...), e.g. reward_mode="progress"
    )
    ```
    Reset options ``split``, ``task_index`` and ``scene`` are forwarded to the wrapped env; other keys are
    ignored with a warning. ``parallel_env()`` is turn-based (PettingZoo's ``turn_based_aec_to_parallel``):
    each step takes a dict agent -> text (anything else raises ``TypeError``, an unknown agent ``ValueError``)
    and applies only the action of ``info["active_agent"]``, which the dict must hold (``ValueError``).
    Pickling (``EzPickle``) rebuilds the env from its arguments: reset it after unpickling.

    ## Version History
    * v0: initial release.
    """

    metadata = {"name": "planner_executor_v0", "render_modes": ["ansi", "human"], "is_parallelizable": False}

    _snapshot_static = frozenset({"env_id", "replan_every", "replan_on_subgoal", "plan_reward_weight", "render_mode",
                                  "possible_agents", "observation_spaces", "action_spaces", "_ezpickle_args",
                                  "_ezpickle_kwargs"})
    _snapshot_children = ("inner",)

    def __init__(
        self,
        env_id: str = "PilotALFWorld-v0",
        *,
        replan_every: int | None = None,
        replan_on_subgoal: bool = True,
        plan_reward_weight: float = 0.0,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ):
        EzPickle.__init__(
            self,
            env_id,
            replan_every=replan_every,
            replan_on_subgoal=replan_on_subgoal,
            plan_reward_weight=plan_reward_weight,
            render_mode=render_mode,
            **env_kwargs,
        )
        super().__init__()
        if env_id not in env_ids():
            raise ValueError(f"unknown env_id {env_id!r}; planner_executor wraps one of {env_ids()}")
        if env_kwargs.get("plan_mode", "agent") != "agent":
            raise ValueError("planner_executor sets plan_mode='agent' on the wrapped env (the planner's plan)")
        if replan_every is not None and (isinstance(replan_every, bool) or not isinstance(replan_every, int)
                                         or replan_every < 1):
            raise ValueError(f"replan_every must be a positive int or None, got {replan_every!r}")
        plan_reward_weight = finite_number("plan_reward_weight", plan_reward_weight)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.env_id = env_id
        self.replan_every = replan_every
        self.replan_on_subgoal = bool(replan_on_subgoal)
        self.plan_reward_weight = plan_reward_weight
        self.render_mode = render_mode
        env_kwargs = {k: v for k, v in env_kwargs.items() if k != "plan_mode"}
        self.inner: gym.Env = gym.make(env_id, plan_mode="agent", **env_kwargs)

        self.possible_agents = list(AGENTS)
        inner_space: gym_spaces.Dict = self.inner.observation_space  # type: ignore[assignment]
        shared = {k: copy.deepcopy(inner_space[k]) for k in ("text", "task", "plan", "subgoals_done", "progress")}
        self.observation_spaces = {
            "planner": gym_spaces.Dict(
                {**shared, "trigger": gym_spaces.Discrete(len(TRIGGERS)), "request": spaces.PilotText(REQUEST_MAX)}
            ),
            "executor": copy.deepcopy(inner_space),
        }
        self.action_spaces = {agent: spaces.action_space() for agent in AGENTS}
        self._obs: dict[str, Any] | None = None
        self._warned_after_end = False

    # ------------------------------------------------------------------ PettingZoo API
    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        obs, info = self.inner.reset(seed=seed, options=forward_options(options))
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.agent_selection = "planner"
        self._obs, self._inner_info = obs, info
        self._world_text = obs["text"]
        self._trigger, self._request = "start", ""
        self._since_plan = 0
        self._best_done = sum(info["subgoals_done"])
        self._warned_after_end = False
        self._turn: dict[str, Any] = {"acting_agent": None, "world_step": False, "team_reward": 0.0,
                                      "plan_bonus": 0.0, "action": "", "feedback": obs["text"]}
        self._set_infos()

    def observe(self, agent: str) -> dict[str, Any]:
        if self._obs is None:
            raise gym.error.ResetNeeded("Call reset() before observe().")
        obs = self._obs
        if agent == "executor":
            return {**obs, "text": self._world_text}
        return {
            "text": self._world_text,
            "task": obs["task"],
            "plan": obs["plan"],
            "subgoals_done": obs["subgoals_done"],
            "progress": obs["progress"],
            "trigger": np.int64(TRIGGERS.index(self._trigger)),
            "request": self._request,
        }

    def step(self, action: Any) -> None:
        if self._obs is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        if not self.agents:  # every agent is done and has taken its dead step: a no-op, as PettingZoo's wrapper
            if not self._warned_after_end:
                self._warned_after_end = True
                warn_step_after_end()
            return
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        text = coerce_text(action)
        self._cumulative_rewards[agent] = 0.0
        score_before = self._inner_info["plan_score"]
        if agent == "planner":
            out, replan, reason = self._planner_turn(text), False, ""
        else:
            rest, replan, reason = cut_block(text, "replan")
            out = self._executor_turn(rest, replan)
        team, feedback = 0.0, ""
        if out is not None:
            obs, reward, terminated, truncated, info = out
            team, feedback = float(reward), obs["text"]
            self._obs, self._inner_info = obs, info
            if agent == "executor":
                self._world_text = obs["text"]
            if terminated or truncated:
                self.terminations = dict.fromkeys(self.agents, bool(terminated))
                self.truncations = dict.fromkeys(self.agents, bool(truncated))
        if agent == "planner":
            bonus = self.plan_reward_weight * (self._inner_info["plan_score"] - score_before)
            self._since_plan, self._request = 0, ""
            nxt = "executor"
        else:
            bonus = 0.0
            nxt = self._after_executor(replan, reason)
        self.rewards = {a: team + bonus if a == "planner" else team for a in self.agents}
        self._accumulate_rewards()
        self._turn = {"acting_agent": agent, "world_step": out is not None, "team_reward": team,
                      "plan_bonus": bonus, "action": text, "feedback": feedback}
        self.agent_selection = nxt
        self._set_infos()
        if self.render_mode == "human":
            print(self.render())

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'.")
            return None
        turn = self._turn
        who = turn["acting_agent"] or "start"
        action = " ".join(turn["action"].split())
        head = f"[{who}] {action}\n" if action else f"[{who}]\n"
        progress = float(self._inner_info["progress"])
        return f"{head}{turn['feedback']}\n[progress {progress:.2f}, next: {self.agent_selection}]"

    def close(self) -> None:
        self.inner.close()

    # ------------------------------------------------------------------ turns
    def _planner_turn(self, text: str) -> tuple:
        parsed = parse_action(text)
        if parsed.plan:
            inner_action = plan_action(parsed.plan)
        elif parsed.switch == "KEEP":
            inner_action = KEEP_ACTION
        else:
            inner_action = ""  # answered "Nothing happens." by the wrapped env; the plan is kept
        return self.inner.step(inner_action)

    def _executor_turn(self, rest: str, replan: bool) -> tuple | None:
        """The executor's text without its ``<replan>`` markup goes to the world, without ``<plan>`` blocks."""
        rest, _, _ = cut_block(rest, "plan")
        if replan and not rest.strip():
            return None  # only a request for a new plan: no world step
        return self.inner.step(rest)

    def _after_executor(self, replan: bool, reason: str) -> str:
        """Who acts after an executor turn, and why (sets the planner's trigger and request)."""
        self._since_plan += 1
        done = sum(self._inner_info["subgoals_done"])
        new_milestone = done > self._best_done
        self._best_done = max(self._best_done, done)
        if replan:
            self._trigger, self._request = "request", spaces.sanitize(" ".join(reason.split()), REQUEST_MAX)
        elif self.replan_on_subgoal and new_milestone:
            self._trigger = "subgoal"
        elif self.replan_every is not None and self._since_plan >= self.replan_every:
            self._trigger = "interval"
        else:
            return "executor"
        return "planner"

    def _set_infos(self) -> None:
        turn = self._turn
        rewards = dict(self.rewards)
        self.infos = {
            agent: {
                **self._inner_info,
                "acting_agent": turn["acting_agent"],
                "active_agent": self.agent_selection,
                "trigger": self._trigger,
                "world_step": turn["world_step"],
                "team_reward": turn["team_reward"],
                "plan_bonus": turn["plan_bonus"],
                "rewards": dict(rewards),
            }
            for agent in self.agents
        }
