"""``TextTaskEnv``: the Gymnasium env every text task in this package is (the contract of :mod:`pilot_envs.core.contract` and the env cards).

It glues a :class:`~pilot_envs.core.backend.Backend` (the world) to the protocol parser, plan modes,
reward modes, and the observation/info contract. Subclasses only pick a backend and write a docstring.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from pilot_envs.core import spaces
from pilot_envs.core.backend import Backend, Outcome, TaskMeta
from pilot_envs.core.contract import PLAN_MODES, coerce_text
from pilot_envs.core.protocol import ParsedAction, parse_action
from pilot_envs.core.rewards import RewardConfig, reward
from pilot_envs.core.snapshot import SnapshotError, Snapshottable, decode, encode
from pilot_envs.core.task import flags_from_stage, plan_coverage, plan_score, plan_step

__all__ = ["TextTaskEnv", "PLAN_MODES", "NOTHING_HAPPENS", "OK"]

NOTHING_HAPPENS = "Nothing happens."
OK = "OK."


class TextTaskEnv(Snapshottable, gym.Env[dict[str, Any], str]):
    """A text task behind the common contract. See :mod:`pilot_envs.alfworld.env` for a full card.

    ## Snapshots
    ``pilot_envs.get_state(env)`` returns the whole state of an episode as plain data (it pickles and writes as
    JSON); ``pilot_envs.set_state(env, snapshot)``, in this env or a fresh one made with the same id and settings
    (in any process), restores it: every later observation, reward and info equals what continuing the original
    would give, ``TimeLimit``'s step count included. A snapshot of another env id, pilot-envs version or settings
    is refused with ``SnapshotError``. Engines that can copy their state do so exactly (the native household
    engine, in time proportional to the state); the others are restored by replaying the episode's commands from
    the same reset, and the restored world is checked against the snapshot's ``state_hash``
    (``SnapshotError`` if it differs, e.g. on a nondeterministic engine).

    ## Episode End
    ### Termination
    The backend reports the task won or lost. Stepping a terminated episode is a no-op until ``reset()``:
    the backend is not called, the reward is exactly 0.0, ``terminated=True`` and ``truncated=False``, the
    observation is the final one unchanged, and the info is the final info except ``action_valid=False``
    and ``command=""`` (``won``, ``lost`` and ``progress`` stay as they were). The first such step of an
    episode logs a Gymnasium warning saying to call ``reset()``. A non-text action still raises ``TypeError``.
    ### Truncation
    Only by ``TimeLimit`` (``max_episode_steps`` in the registration). A truncated episode is not terminated:
    the env itself keeps stepping the world if it is stepped again, and ``TimeLimit`` keeps answering
    ``truncated=True``; call ``reset()``. ``TimeLimit`` also keeps counting the no-op steps after termination,
    so they report ``truncated=True`` once the limit is reached.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}
    _snapshot_static = frozenset({"backend", "reward_config", "observation_space", "action_space", "render_mode",
                                  "spec"})
    _snapshot_episode = "_meta"

    def __init__(
        self,
        backend: Backend,
        *,
        plan_mode: str = "none",
        reward_mode: str = "sparse",
        success_reward: float = 1.0,
        invalid_action_penalty: float = 0.0,
        gamma: float = 1.0,
        milestone_bonus: float | None = None,
        render_mode: str | None = None,
    ):
        if plan_mode not in PLAN_MODES:
            raise ValueError(f"plan_mode must be one of {PLAN_MODES}, got {plan_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.backend = backend
        self.plan_mode = plan_mode
        self.render_mode = render_mode
        self.reward_config = RewardConfig(
            mode=reward_mode,
            success_reward=success_reward,
            invalid_action_penalty=invalid_action_penalty,
            gamma=gamma,
            milestone_bonus=milestone_bonus,
        )  # checks every setting (types, finite, ranges): a bad one fails here, at gym.make
        self.observation_space = spaces.observation_space(
            num_subgoals=backend.max_subgoals, max_commands=backend.max_commands
        )
        self.action_space = spaces.action_space()
        self._meta: TaskMeta | None = None
        self._declared_plan: tuple[str, ...] = ()
        self._stage = 0
        self._best_stage = 0
        self._progress_now = 0.0
        self._text = ""
        self._last_command = ""
        self._last_valid = True
        self._format_ok = True
        self._final: tuple[dict[str, Any], dict[str, Any]] | None = None  # (obs, info) once terminated
        self._warned_after_end = False
        # how the episode was loaded and the commands the backend ran since: a snapshot of an engine that cannot
        # copy its own state replays them (None for engines that copy their state exactly)
        self._loaded_with: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._commands: list[str] | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
        options = dict(options or {})
        if self.backend.exact_snapshots:  # the backend copies its state: nothing to replay
            self._loaded_with, self._commands = None, None
        else:
            self._loaded_with, self._commands = (self.np_random.bit_generator.state, options), []
        self._meta = self.backend.load(self.np_random, options)
        self._declared_plan = ()
        self._stage = self._best_stage = self.backend.stage()
        self._progress_now = self._measure_progress()
        self._text = self._meta.initial_text
        self._last_command, self._last_valid, self._format_ok = "", True, True
        self._final, self._warned_after_end = None, False
        return self._observation(), self._info(won=False, lost=False)

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        if self._final is not None:
            return self._step_after_end(action)
        if self._meta is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        parsed = parse_action(coerce_text(action))
        self._format_ok = parsed.format_ok
        if parsed.plan:  # a declared plan must fit the observation space (TextList(64) of 256-char steps)
            self._declared_plan = tuple(spaces.sanitize(step, spaces.COMMAND_MAX) for step in parsed.plan[:64])
        outcome = self._execute(parsed)
        self._text = spaces.sanitize(outcome.text)
        self._last_valid = outcome.valid
        before = self._progress_now
        self._stage = self.backend.stage()
        self._progress_now = self._measure_progress()
        new = max(0, self._stage - self._best_stage)
        self._best_stage = max(self._best_stage, self._stage)
        k = len(self._meta.subgoals)
        r = reward(
            self.reward_config,
            won=outcome.won,
            progress_before=before,
            progress_after=self._progress_now if k else float(outcome.won),
            new_milestones=new,
            num_subgoals=k,
            action_valid=outcome.valid,
        )
        terminated = bool(outcome.won or outcome.lost)
        obs, info = self._observation(), self._info(won=outcome.won, lost=outcome.lost)
        if terminated:
            self._final = (_copy_obs(obs), dict(info))
        if self.render_mode == "human":
            print(self.render())
        return obs, r, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'.")
            return None
        head = f"> {self._last_command}\n" if self._last_command else ""
        return f"{head}{self._text}\n[progress {self._progress():.2f}]"

    def close(self) -> None:
        self.backend.close()
        super().close()

    # ------------------------------------------------------------------ the trainer contract (TextEnv)
    @property
    def domain(self) -> str:
        """A short description of this env's world for prompts."""
        return self.backend.domain

    @property
    def noop_action(self) -> str:
        """A command that changes nothing."""
        return self.backend.noop_action

    def splits(self) -> dict[str, int]:
        """The fixed task splits and their sizes (``reset(options={"split": s, "task_index": i})``)."""
        return self.backend.splits()

    def set_plan_mode(self, mode: str) -> None:
        """Change ``plan_mode`` (one of ``PLAN_MODES``); it applies from the next observation on."""
        if mode not in PLAN_MODES:
            raise ValueError(f"plan_mode must be one of {PLAN_MODES}, got {mode!r}")
        self.plan_mode = mode

    # ------------------------------------------------------------------ helpers
    def _step_after_end(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """A step of a terminated episode: nothing happens (see the class docstring, "Episode End")."""
        coerce_text(action)  # a non-text action is still an error
        if not self._warned_after_end:
            self._warned_after_end = True
            gym.logger.warn(
                "step() called after the episode terminated: nothing happens (reward 0.0, the final observation "
                "again). Call reset() to start a new episode."
            )
        obs, info = self._final
        return _copy_obs(obs), 0.0, True, False, {**info, "action_valid": False, "command": ""}

    def _execute(self, parsed: ParsedAction) -> Outcome:
        if parsed.kind in ("think", "plan"):
            self._last_command = ""
            return Outcome(OK, valid=True)
        if parsed.kind != "command" or parsed.command is None:
            self._last_command = ""
            return Outcome(NOTHING_HAPPENS, valid=False)
        self._last_command = parsed.command
        if parsed.command == "help":
            text = self.backend.help_text()
            if text is not None:
                return Outcome(text, valid=True)
        if self._commands is not None:
            self._commands.append(parsed.command)
        return self.backend.execute(parsed.command)

    # ------------------------------------------------------------------ snapshots (see "Snapshots" above)
    def _snapshot_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"state_hash": self.backend.state_hash()}
        if self.backend.exact_snapshots:
            extra["backend"] = encode(self.backend.snapshot())
        return extra

    def _restore_extra(self, snapshot: Any, fields: dict[str, Any]) -> None:
        if self.backend.exact_snapshots:
            if "backend" not in snapshot:
                raise SnapshotError("damaged snapshot: no 'backend' entry")
            self.backend.restore(decode(snapshot["backend"]))
            return
        commands = fields.get("_commands")
        if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
            raise SnapshotError("damaged snapshot: '_commands' is not a list of strings")
        try:
            rng_state, options = fields["_loaded_with"]
            rng = decode({"~rng": encode(rng_state)})  # only numpy's bit generators, by name
            self.backend.load(rng, dict(options))
        except (KeyError, TypeError, ValueError) as err:
            raise SnapshotError(f"damaged snapshot: the episode's reset cannot be repeated ({err})") from None
        for command in commands:
            self.backend.execute(command)
        if self.backend.state_hash() != snapshot.get("state_hash"):
            raise SnapshotError(
                f"replaying the snapshot's {len(commands)} commands did not reach its state (state_hash "
                f"{self.backend.state_hash()} != {snapshot.get('state_hash')}): this engine is not deterministic "
                "here (e.g. ScienceWorld without deterministic=True)"
            )

    def _progress(self) -> float:
        return self._progress_now

    def _measure_progress(self) -> float:
        """The backend's own progress when it has one, else the satisfied fraction of the subgoals."""
        measured = self.backend.progress()
        if measured is not None:
            return min(1.0, max(0.0, float(measured)))
        k = len(self._meta.subgoals)
        return self._stage / k if k else 0.0

    def _plan_in_effect(self) -> tuple[str, ...]:
        if self.plan_mode == "oracle":
            return self._meta.oracle_plan
        if self.plan_mode == "agent":
            return self._declared_plan
        return ()

    def _observation(self) -> dict[str, Any]:
        meta = self._meta
        flags = np.zeros(self.backend.max_subgoals, dtype=np.int8)
        flags[: self._stage] = 1
        admissible = self.backend.admissible_commands()[: self.backend.max_commands]
        return {
            "text": self._text,
            "task": meta.task,
            "plan": self._plan_in_effect(),
            "subgoals_done": flags,
            "progress": np.array([self._progress()], dtype=np.float32),
            "admissible_commands": admissible,
        }

    def _info(self, *, won: bool, lost: bool) -> dict[str, Any]:
        meta = self._meta
        done = flags_from_stage(self._stage, len(meta.subgoals))
        plan = self._plan_in_effect()
        expert = self.backend.expert_plan()
        return {
            "won": bool(won),
            "lost": bool(lost),
            "progress": self._progress(),
            "subgoals": tuple(g.text for g in meta.subgoals),
            "subgoals_done": done,
            "expert_action": expert[0] if expert else None,
            "expert_plan": expert,
            "action_valid": self._last_valid,
            "format_ok": self._format_ok,
            "command": self._last_command,
            "plan_score": plan_score(self._declared_plan, meta.subgoals) if self._declared_plan else 0.0,
            "plan_step": plan_step(plan, meta.subgoals, done) if plan else 0,
            "plan_coverage": plan_coverage(self._declared_plan, meta.subgoals),
            "state_hash": self.backend.state_hash(),
            "task_type": meta.task_type,
            "task_id": meta.task_id,
            "split": meta.split,
        }


def _copy_obs(obs: dict[str, Any]) -> dict[str, Any]:
    """A copy of an observation that shares nothing mutable with it (its arrays are copied)."""
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in obs.items()}
