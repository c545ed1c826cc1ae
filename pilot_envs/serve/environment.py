"""One registered env id as an OpenEnv ``Environment``: the action, observation and state models the server
speaks, and :class:`PilotEnvironment`, which holds one ``gym.make(env_id, **env_kwargs)`` per session.

The observation carries the whole contract: the six observation keys as JSON (lists for tuples and arrays),
``reward``, ``done`` (= terminated or truncated), ``terminated`` and ``truncated`` separately, and ``info``
with every info key (:data:`pilot_envs.core.contract.INFO_KEYS`, plus any an engine adds).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from openenv.core import Action, Environment, Observation, State
from pydantic import Field

from pilot_envs.core.contract import MAX_ACTION_CHARS
from pilot_envs.serve.errors import ActionTooLarge, BadRequest, OutOfOrder, SessionGone
from pilot_envs.serve.wire import obs_to_json, to_json

__all__ = ["MAX_WIRE_ACTION_CHARS", "PilotAction", "PilotObservation", "PilotEnvironment", "check_reset_args"]

MAX_WIRE_ACTION_CHARS = 8 * MAX_ACTION_CHARS
"""The longest action the server accepts (longer: 413). The env reads only the first
:data:`~pilot_envs.core.contract.MAX_ACTION_CHARS` characters, as in-process; this bound keeps megabyte
payloads out."""


class PilotAction(Action):
    """One agent turn: a command, tagged LLM output or ReAct text (the env's action space)."""

    text: str = Field(description="the action text (a command such as 'go to cabinet 1', or an LLM response)",
                      json_schema_extra={"maxLength": MAX_WIRE_ACTION_CHARS})


class PilotObservation(Observation):
    """The env's observation, reward and flags, and its info."""

    text: str = Field(default="", description="the latest feedback, as the engine words it")
    task: str = Field(default="", description="the goal sentence")
    plan: list[str] = Field(default_factory=list, description="the plan in effect (see the env's plan_mode)")
    subgoals_done: list[int] = Field(default_factory=list, description="0/1 per milestone (padded)")
    progress: list[float] = Field(default_factory=list, description="[fraction of milestones reached]")
    admissible_commands: list[str] = Field(default_factory=list, description="the commands that do something now")
    terminated: bool = Field(default=False, description="the task is solved or can no longer be solved")
    truncated: bool = Field(default=False, description="the step limit ended the episode")
    info: dict[str, Any] = Field(default_factory=dict, description="every info key of the env's step/reset")


_RESET_KEYS = ("seed", "options", "episode_id")


def check_reset_args(seed: Any, options: Any, extra: dict[str, Any]) -> None:
    """``BadRequest`` naming the problem, unless the reset arguments are what ``gym.Env.reset`` accepts."""
    if extra:
        raise BadRequest(f"unknown reset parameter(s) {sorted(extra)}: reset takes {list(_RESET_KEYS)}")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise BadRequest(f"seed must be a non-negative integer or null, got {seed!r:.100}")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"options must be an object such as {{\"split\": \"valid_seen\", \"task_index\": 0}} or null, "
                         f"got {type(options).__name__}")


class PilotEnvironment(Environment[PilotAction, PilotObservation, State]):
    """A registered env id behind OpenEnv's server. The gym env is made at the first reset (so the stateless
    HTTP ``/state`` and ``/metadata`` requests, which make a fresh instance each, cost nothing)."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session has its own gym env; our envs share no mutable state

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None):
        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self._env: gym.Env | None = None
        self._closed = False
        self._episode_id: str | None = None
        self._steps = 0
        self._last: PilotObservation | None = None

    # ------------------------------------------------------------------ OpenEnv API
    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> PilotObservation:
        self._check_open()
        options = kwargs.pop("options", None)
        check_reset_args(seed, options, kwargs)
        if episode_id is not None and not isinstance(episode_id, str):
            raise BadRequest(f"episode_id must be a string or null, got {type(episode_id).__name__}")
        if self._env is None:
            self._env = gym.make(self.env_id, **self.env_kwargs)
        try:
            obs, info = self._env.reset(seed=seed, options=options)
        except (ValueError, TypeError) as e:  # the env's own checks of options (unknown split, index, key)
            if self._last is None:  # Gymnasium 1.4's PassiveEnvChecker breaks (its first step raises) when the
                self._env.close()  # first reset raised: start the next reset from a fresh env
                self._env = None
            raise BadRequest(f"reset refused: {e}") from e
        self._episode_id, self._steps = episode_id, 0
        self._last = self._observation(obs, None, False, False, info)
        return self._last

    def step(self, action: PilotAction, timeout_s: float | None = None, **kwargs: Any) -> PilotObservation:
        self._check_open()
        if self._last is None:
            raise OutOfOrder(
                "step before reset: this session has no episode yet; send reset first on the same session "
                "(a WebSocket /ws connection or an HTTP session, POST /sessions/{id}/reset). The plain HTTP "
                "POST /step of the OpenEnv protocol is stateless: each request gets a fresh, never-reset env.")
        if len(action.text) > MAX_WIRE_ACTION_CHARS:
            raise ActionTooLarge(f"action text of {len(action.text):,} characters; the server accepts at most "
                                 f"{MAX_WIRE_ACTION_CHARS:,} (the env reads only the first {MAX_ACTION_CHARS:,})")
        obs, reward, terminated, truncated, info = self._env.step(action.text)
        self._steps += 1
        self._last = self._observation(obs, float(reward), bool(terminated), bool(truncated), info)
        return self._last

    @property
    def state(self) -> State:
        last = self._last
        info = last.info if last is not None else {}
        return State(episode_id=self._episode_id, step_count=self._steps, env_id=self.env_id,
                     task_id=info.get("task_id"), split=info.get("split"), won=info.get("won"),
                     terminated=last.terminated if last else None, truncated=last.truncated if last else None)

    def close(self) -> None:
        self._closed = True
        if self._env is not None:
            self._env.close()
            self._env = None

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise SessionGone("this session is closed (by its client, or by the server after it sat idle longer "
                              "than the server's idle timeout); open a new session")

    @staticmethod
    def _observation(obs: dict[str, Any], reward: float | None, terminated: bool, truncated: bool,
                     info: dict[str, Any]) -> PilotObservation:
        return PilotObservation(**obs_to_json(obs), reward=reward, done=terminated or truncated,
                                terminated=terminated, truncated=truncated, info=to_json(info))
