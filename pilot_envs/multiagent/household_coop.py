"""``household_coop_v0``: several embodied agents share one household and one two-object task."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces as gym_spaces
from gymnasium.utils import EzPickle, seeding
from pettingzoo import ParallelEnv

from pilot_envs.alfworld.backend import GRAMMARS, HouseholdBackend
from pilot_envs.alfworld.scene import Scene
from pilot_envs.alfworld.text import NOTHING
from pilot_envs.core import spaces
from pilot_envs.core.backend import TaskMeta
from pilot_envs.core.protocol import ParsedAction, parse_action
from pilot_envs.core.rewards import RewardConfig, reward
from pilot_envs.core.snapshot import Snapshottable
from pilot_envs.core.task import flags_from_stage, plan_coverage, plan_score, plan_step
from pilot_envs.core.text_env import OK, PLAN_MODES
from pilot_envs.multiagent._common import (
    check_actions,
    clean_plan,
    coerce_text,
    forward_options,
    warn_step_after_end,
)
from pilot_envs.multiagent.coop_expert import COOP_TASK_TYPE, team_plans
from pilot_envs.multiagent.coop_world import CoopWorld

__all__ = ["HouseholdCoopEnv", "MAX_AGENTS", "agent_name"]

MAX_AGENTS = 8
TEAMMATES_MAX = 1024


def agent_name(i: int) -> str:
    return f"agent_{i}"


def describe(name: str, position: str | None, hand: str | None) -> str:
    """One teammate, e.g. ``agent_1 is at cabinet 2 and carries a mug 1.``"""
    where = f"is at {position}" if position is not None else "is in the middle of the room"
    carries = f"carries a {hand}" if hand is not None else "carries nothing"
    return f"{name} {where} and {carries}."


class HouseholdCoopEnv(Snapshottable, ParallelEnv, EzPickle):
    """
    ## Description
    ``n_agents`` embodied agents (default 2) in one PilotALFWorld household pursue one shared
    ``pick_two_obj_and_place`` task ("put two cups in sinkbasin"): the work splits naturally (each agent
    fetches one object), so a coordinated team finishes in about half the steps of one agent. The world,
    the command grammar and every feedback sentence are the single-agent engine's
    (``pilot_envs.alfworld``); each agent has its own location and hand and sees its own feedback.
    Objects in an agent's hand are out of everyone else's reach.

    **Resolution order.** Actions are simultaneous; the env resolves them one agent at a time in index
    order (``agent_0``, ``agent_1``, ...), each against the state the lower-indexed agents left. So when
    two agents take the same object in one step the lower index gets it and the other is answered
    ``Nothing happens.``; an object ``agent_0`` puts down can be taken by ``agent_1`` in the same step; a
    receptacle ``agent_0`` closes is closed for ``agent_1``.

    ## Agents
    ``["agent_0", ..., "agent_{n-1}"]``; all act every step until the episode ends, then all are done.

    ## Action Space
    ``PilotText(8192)`` per agent, read exactly as by the single-agent env (bare commands,
    ``<think>/<plan>/<action>`` tags, ReAct). Any string is safe; no action masks (the admissible commands
    are in the observation). ``step`` takes a dict agent -> text: anything else raises ``TypeError``, a key
    that is not an agent ``ValueError``, a non-text action ``TypeError`` (before any action is resolved). An
    agent missing from the dict does nothing (``Nothing happens.``).

    ## Observation Space
    Per agent, the single-agent ``Dict`` plus the teammates:

    | key | space | meaning |
    |---|---|---|
    | ``text`` | PilotText(8192) | this agent's feedback, exactly as the single-agent engine words it |
    | ``task`` | PilotText(1024) | the goal sentence |
    | ``plan`` | TextList(64) | the plan in effect (``plan_mode``; with ``"agent"`` this agent's own) |
    | ``subgoals_done`` | MultiBinary(8) | team milestones reached, in order |
    | ``progress`` | Box(0, 1, (1,)) | team milestones reached / 8 |
    | ``admissible_commands`` | TextList(512) | the commands that do something for this agent now |
    | ``teammates`` | PilotText(1024) | e.g. ``agent_1 is at cabinet 2 and carries a mug 1.`` |

    ## Starting State
    Every agent in the middle of the room, hands empty. ``reset(seed=s)`` samples a procedural two-object
    task; ``options={"split": S, "task_index": i}`` loads the i-th two-object task of a fixed split;
    ``{"scene": Scene(...)}`` plays a two-object scene you built. Other option keys are ignored (warning).

    ## Rewards
    One team reward, the same for every agent, with the single-agent milestones over the team's stage (the
    furthest any agent's view reaches): ``reward_mode`` ``"sparse"`` | ``"progress"`` | ``"milestone"`` as in
    the single-agent env, minus ``invalid_action_penalty`` for *each* agent whose action did nothing.
    Splitting work pays through the step budget (``max_cycles``) and, with ``reward_mode="progress"`` and
    ``gamma < 1``, through discounting.
    The settings are checked at construction as in the single-agent env (finite real numbers,
    ``invalid_action_penalty >= 0``, ``0 <= gamma <= 1``; ``TypeError`` / ``ValueError`` otherwise).

    ## Episode End
    ### Termination
    The task is solved: every agent terminates.
    ### Truncation
    ``max_cycles`` steps (default 50): every agent truncates.
    ### After the end
    ``agents`` is empty; a Parallel ``step`` then does nothing, pays no reward and returns five empty dicts
    (as PettingZoo's own conversions do), warning once to call ``reset()``. In the AEC view each done agent
    takes one ``step(None)`` (any other action raises ``ValueError``); a ``step`` once ``agents`` is empty
    does nothing and warns once.

    ## Information
    Per agent, the single-agent keys - ``won``, ``lost``, ``progress``, ``subgoals``, ``subgoals_done``,
    ``expert_action`` / ``expert_plan`` (this agent's part of the team oracle; None / empty when it has
    nothing to do), ``action_valid``, ``format_ok``, ``command``, ``plan_score``, ``plan_step``, ``plan_coverage``,
    ``state_hash`` (the whole team's state), ``task_type``, ``task_id``, ``split`` - plus ``team_reward``
    (the shared reward of the step), ``contribution`` (the change of team progress this agent's own
    command made during resolution; the agents' contributions sum to the step's progress change),
    ``total_contribution`` (its sum over the episode), ``location`` and ``holding``.

    ## Snapshots
    ``pilot_envs.get_state(env)`` / ``pilot_envs.set_state(env, snapshot)`` on the Parallel env and on the AEC view
    (whose turn order is saved too): the shared world (copied exactly), every agent's position, hand, plan and
    last feedback, as plain data (pickles, writes as JSON); restored exactly here or in a fresh env made with the
    same arguments.

    ## Arguments
    ```python
    from pilot_envs.multiagent import household_coop_v0
    household_coop_v0.parallel_env(     # env(...) and raw_env(...) (AEC) take the same arguments
        n_agents=2,                     # 1..8
        max_cycles=50,                  # steps before truncation
        plan_mode="none",               # "none" | "oracle" | "agent"
        reward_mode="sparse",           # "sparse" | "progress" | "milestone"
        success_reward=1.0,
        invalid_action_penalty=0.0,     # per agent whose action did nothing
        gamma=1.0,                      # discount of the progress potential
        milestone_bonus=None,           # None: 1 / number of milestones
        max_receptacles=None,           # small scenes: at most this many receptacles
        max_objects=None,               # small scenes: at most this many objects
        grammar="alfworld",             # "legacy": pre-0.4 wording
        render_mode=None,               # "ansi" | "human"
    )
    ```
    The AEC view (``env()``) is PettingZoo's ``parallel_to_aec`` conversion. Pickling (``EzPickle``)
    rebuilds the env from its arguments: reset it after unpickling.

    ## Version History
    * v0: initial release.
    """

    metadata = {"name": "household_coop_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    # the backend only loads tasks (its random draws come from ``np_random``, which is state); the world is ``world``
    _snapshot_static = frozenset({"n_agents", "max_cycles", "plan_mode", "render_mode", "legacy", "reward_config",
                                  "backend", "possible_agents", "observation_spaces", "action_spaces",
                                  "_ezpickle_args", "_ezpickle_kwargs"})
    _snapshot_episode = "world"

    def __init__(
        self,
        n_agents: int = 2,
        *,
        max_cycles: int = 50,
        plan_mode: str = "none",
        reward_mode: str = "sparse",
        success_reward: float = 1.0,
        invalid_action_penalty: float = 0.0,
        gamma: float = 1.0,
        milestone_bonus: float | None = None,
        max_receptacles: int | None = None,
        max_objects: int | None = None,
        grammar: str = "alfworld",
        render_mode: str | None = None,
    ):
        EzPickle.__init__(
            self,
            n_agents,
            max_cycles=max_cycles,
            plan_mode=plan_mode,
            reward_mode=reward_mode,
            success_reward=success_reward,
            invalid_action_penalty=invalid_action_penalty,
            gamma=gamma,
            milestone_bonus=milestone_bonus,
            max_receptacles=max_receptacles,
            max_objects=max_objects,
            grammar=grammar,
            render_mode=render_mode,
        )
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or not 1 <= n_agents <= MAX_AGENTS:
            raise ValueError(f"n_agents must be an int in 1..{MAX_AGENTS}, got {n_agents!r}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive int, got {max_cycles!r}")
        if plan_mode not in PLAN_MODES:
            raise ValueError(f"plan_mode must be one of {PLAN_MODES}, got {plan_mode!r}")
        if grammar not in GRAMMARS:
            raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.n_agents = n_agents
        self.max_cycles = max_cycles
        self.plan_mode = plan_mode
        self.render_mode = render_mode
        self.legacy = grammar == "legacy"
        self.reward_config = RewardConfig(
            mode=reward_mode,
            success_reward=success_reward,
            invalid_action_penalty=invalid_action_penalty,
            gamma=gamma,
            milestone_bonus=milestone_bonus,
        )  # checks every setting (types, finite, ranges)
        self.backend = HouseholdBackend(
            task_types=(COOP_TASK_TYPE,), max_receptacles=max_receptacles, max_objects=max_objects, grammar=grammar
        )
        self.possible_agents = [agent_name(i) for i in range(n_agents)]
        self.agents: list[str] = []
        self.observation_spaces = {a: self._make_observation_space() for a in self.possible_agents}
        self.action_spaces = {a: spaces.action_space() for a in self.possible_agents}
        self.np_random: np.random.Generator | None = None
        self.np_random_seed: int | None = None
        self.world: CoopWorld | None = None
        self._meta: TaskMeta | None = None
        self._warned_after_end = False

    def _make_observation_space(self) -> gym_spaces.Dict:
        base = spaces.observation_space(num_subgoals=self.backend.max_subgoals, max_commands=self.backend.max_commands)
        return gym_spaces.Dict({**base.spaces, "teammates": spaces.PilotText(TEAMMATES_MAX)})

    # ------------------------------------------------------------------ PettingZoo API
    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        if seed is not None or self.np_random is None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        opts = forward_options(options)
        scene = opts.get("scene")
        if isinstance(scene, Scene) and scene.task.task_type != COOP_TASK_TYPE:
            raise ValueError(f"household_coop plays {COOP_TASK_TYPE!r} scenes, got {scene.task.task_type!r}")
        self._meta = self.backend.load(self.np_random, opts)
        self.world = CoopWorld(self.backend.scene, self.n_agents, legacy=self.legacy)
        self._task = self.backend.scene.task
        self._k = len(self._meta.subgoals)
        self.agents = self.possible_agents[:]
        self._cycles = 0
        self._stage = self._best_stage = self.world.team_stage(self._task)
        n = self.n_agents
        self._texts = [self._meta.initial_text] * n
        self._commands = [""] * n
        self._valid = [True] * n
        self._format_ok = [True] * n
        self._plans: list[tuple[str, ...]] = [()] * n
        self._contribution = [0.0] * n
        self._total_contribution = [0.0] * n
        self._team_reward = 0.0
        self._warned_after_end = False
        return self._observations(), self._infos(won=False)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if self.world is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        check_actions(actions, self.possible_agents)
        if not self.agents:  # the episode is over: nothing happens (PettingZoo's conversions return empty dicts)
            if not self._warned_after_end:
                self._warned_after_end = True
                warn_step_after_end()
            return {}, {}, {}, {}, {}
        texts = [coerce_text(actions.get(agent, "")) for agent in self.possible_agents]  # all checked, then run
        before = stage = self._stage
        for i, text in enumerate(texts):
            parsed = parse_action(text)
            self._format_ok[i] = parsed.format_ok
            if parsed.plan:
                self._plans[i] = clean_plan(parsed.plan)
            self._texts[i], self._valid[i], self._commands[i] = self._resolve(i, parsed)
            after_i = self.world.team_stage(self._task)
            self._contribution[i] = (after_i - stage) / self._k
            self._total_contribution[i] += self._contribution[i]
            stage = after_i
        self._stage = stage
        won = stage == self._k
        cfg = self.reward_config
        self._team_reward = reward(
            cfg,
            won=won,
            progress_before=before / self._k,
            progress_after=stage / self._k,
            new_milestones=max(0, stage - self._best_stage),
            num_subgoals=self._k,
            action_valid=True,
        ) - cfg.invalid_action_penalty * self._valid.count(False)
        self._best_stage = max(self._best_stage, stage)
        self._cycles += 1
        truncated = not won and self._cycles >= self.max_cycles
        agents = self.agents
        observations, infos = self._observations(), self._infos(won=won)
        rewards = dict.fromkeys(agents, self._team_reward)
        terminations = dict.fromkeys(agents, won)
        truncations = dict.fromkeys(agents, truncated)
        if won or truncated:
            self.agents = []
        if self.render_mode == "human":
            print(self.render())
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'.")
            return None
        if self.world is None:
            return None
        lines = []
        for i, name in enumerate(self.possible_agents):
            head = f"{name} > {self._commands[i]}\n" if self._commands[i] else f"{name}\n"
            lines.append(head + self._texts[i])
        return "\n".join(lines) + f"\n[progress {self._stage / self._k:.2f}]"

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------------ helpers
    def _resolve(self, i: int, parsed: ParsedAction) -> tuple[str, bool, str]:
        """(feedback, valid, executed command) of agent ``i``'s parsed action on the current state."""
        if parsed.kind in ("think", "plan"):
            return OK, True, ""
        if parsed.kind != "command" or parsed.command is None:
            return NOTHING, False, ""
        text = self.backend.help_text() if parsed.command == "help" else None  # as TextTaskEnv does
        if text is None:
            text = self.world.execute_as(i, parsed.command)
        if text is None:
            return NOTHING, False, parsed.command
        return spaces.sanitize(text), True, parsed.command

    def _plan_in_effect(self, i: int) -> tuple[str, ...]:
        if self.plan_mode == "oracle":
            return self._meta.oracle_plan
        if self.plan_mode == "agent":
            return self._plans[i]
        return ()

    def _teammates(self, i: int) -> str:
        world = self.world
        text = " ".join(
            describe(name, world.positions[j], world.hands[j])
            for j, name in enumerate(self.possible_agents)
            if j != i
        )
        return spaces.sanitize(text, TEAMMATES_MAX)

    def _observations(self) -> dict[str, dict[str, Any]]:
        flags = np.zeros(self.backend.max_subgoals, dtype=np.int8)
        flags[: self._stage] = 1
        progress = np.array([self._stage / self._k], dtype=np.float32)
        return {
            name: {
                "text": self._texts[i],
                "task": self._meta.task,
                "plan": self._plan_in_effect(i),
                "subgoals_done": flags.copy(),
                "progress": progress.copy(),
                "admissible_commands": self.world.admissible_for(i)[: self.backend.max_commands],
                "teammates": self._teammates(i),
            }
            for i, name in enumerate(self.possible_agents)
            if name in self.agents
        }

    def _infos(self, *, won: bool) -> dict[str, dict[str, Any]]:
        meta, world = self._meta, self.world
        done = flags_from_stage(self._stage, self._k)
        plans = team_plans(world, self._task)
        state_hash = world.state_hash()
        infos = {}
        for i, name in enumerate(self.possible_agents):
            if name not in self.agents:
                continue
            plan = self._plan_in_effect(i)
            infos[name] = {
                "won": bool(won),
                "lost": False,
                "progress": self._stage / self._k,
                "subgoals": tuple(g.text for g in meta.subgoals),
                "subgoals_done": done,
                "expert_action": plans[i][0] if plans[i] else None,
                "expert_plan": plans[i],
                "action_valid": self._valid[i],
                "format_ok": self._format_ok[i],
                "command": self._commands[i],
                "plan_score": plan_score(self._plans[i], meta.subgoals) if self._plans[i] else 0.0,
                "plan_step": plan_step(plan, meta.subgoals, done) if plan else 0,
                "plan_coverage": plan_coverage(self._plans[i], meta.subgoals),
                "state_hash": state_hash,
                "task_type": meta.task_type,
                "task_id": meta.task_id,
                "split": meta.split,
                "team_reward": self._team_reward,
                "contribution": self._contribution[i],
                "total_contribution": self._total_contribution[i],
                "location": world.positions[i],
                "holding": world.hands[i],
            }
        return infos
