"""Replayable transcripts and ``pilot-envs replay``.

A transcript is a JSONL file, one episode per line. Every writer of this project (the trainers' iteration and
evaluation transcripts, ``pilot-envs play --transcript``, ``pilot-envs eval --transcripts``) writes what a replay
needs::

    {"format": "pilot-envs-transcript/1",
     "env": {"id": "PilotALFWorldSmall-v0", "version": "0.1.0", "kwargs": {...}},   # how to make the env
     "seed": 7, "options": {"split": "train", "task_index": 3},                       # how it was reset
     "start": null,                   # a snapshot of the env right after reset, when it was reset without a seed
     "turns": [{"action": "...",      # the text given to env.step ("response" in trainer transcripts)
                "observation": "...", "state_hash": "...",                 # what the action answered
                "reward": 0.0, "command": "...", "won": false, ...}]}       # what the step returned

:func:`replay_episode` makes the env again, resets it the same way, steps every recorded action and compares each
recorded field with what the env returns now; the first difference is reported as (turn, field, expected, got).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from pilot_envs.core.files import atomic_write_text
from pilot_envs.core.snapshot import SnapshotError, decode, encode, get_state, identity, set_state

__all__ = [
    "TRANSCRIPT_FORMAT",
    "Divergence",
    "TranscriptRecorder",
    "env_header",
    "read_transcripts",
    "replay_episode",
    "replay_file",
    "write_transcripts",
]

TRANSCRIPT_FORMAT = "pilot-envs-transcript/1"
ACTION_KEYS = ("action", "response")
"""Where a turn keeps the text given to ``env.step`` (trainers call it the response)."""
BEFORE_KEYS = ("observation", "state_hash")
"""Recorded before the step: the observation text the action answered and the state it acted in."""
AFTER_KEYS = ("reward", "terminated", "truncated", "command", "won", "progress", "action_valid", "format_ok",
              "plan_score")
"""Recorded after the step, from its result and info."""


def env_header(env: Any) -> dict[str, Any] | None:
    """How to make ``env`` again (its registered id, pilot-envs version and ``gym.make`` keyword arguments), or
    None when it is not a registered env of this package (a replay then says so)."""
    spec = getattr(getattr(env, "unwrapped", env), "spec", None)
    if not isinstance(spec, gym.envs.registration.EnvSpec) or not spec.id.startswith("Pilot"):
        return None
    try:
        return {**identity(spec.id, spec.kwargs), "max_episode_steps": spec.max_episode_steps}
    except SnapshotError:  # e.g. an executor object: the env cannot be made again from data
        return None


def make_from_header(header: Any) -> gym.Env:
    """The env a transcript's header describes; ``ValueError`` with the reason when it cannot be made here."""
    import pilot_envs

    if not isinstance(header, Mapping) or not isinstance(header.get("id"), str):
        raise ValueError("the transcript does not say which env it played (no 'env' header: written by an older "
                         "version or by a custom env factory), so it cannot be replayed")
    if header.get("version") != pilot_envs.__version__:
        raise ValueError(f"the transcript was written with pilot-envs {header.get('version')}; this is "
                         f"{pilot_envs.__version__}")
    kwargs = decode(header.get("kwargs") or {})
    if header.get("max_episode_steps") is not None:
        kwargs["max_episode_steps"] = header["max_episode_steps"]
    try:
        return gym.make(header["id"], **kwargs)
    except gym.error.Error as err:
        raise ValueError(f"cannot make {header['id']!r} here: {err}") from None


@dataclass(frozen=True)
class Divergence:
    """The first place a replay differs from its transcript."""

    turn: int  # 1-based; 0: the reset
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        where = "the reset" if self.turn == 0 else f"turn {self.turn}"
        return f"{where}: {self.field} expected {_short(self.expected)}, got {_short(self.got)}"


def _short(value: Any, n: int = 160) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= n else text[: n - 3] + "..."


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return float(expected) == float(got) or (math.isnan(float(expected)) and math.isnan(float(got)))
        except (TypeError, ValueError):
            return False
    return expected == got


def _step_fields(reward: float, term: bool, trunc: bool, info: Mapping[str, Any]) -> dict[str, Any]:
    got = {"reward": float(reward), "terminated": bool(term), "truncated": bool(trunc)}
    for key in AFTER_KEYS[3:]:
        if key in info:
            value = info[key]
            got[key] = value.item() if hasattr(value, "item") else value
    return got


def replay_episode(record: Mapping[str, Any], env: gym.Env | None = None) -> Divergence | None:
    """Re-run one transcript episode; None when everything recorded is reproduced, else the first difference.

    ``env`` (made from the header when not given, and closed then) must be the env the header describes."""
    if record.get("format", TRANSCRIPT_FORMAT) != TRANSCRIPT_FORMAT:
        raise ValueError(f"unknown transcript format {record.get('format')!r} (this version reads {TRANSCRIPT_FORMAT!r})")
    own = env is None
    if own:
        env = make_from_header(record.get("env"))
    try:
        return _replay(record, env)
    finally:
        if own:
            env.close()


def _replay(record: Mapping[str, Any], env: gym.Env) -> Divergence | None:
    turns = record.get("turns")
    if not isinstance(turns, list):
        raise ValueError("a transcript episode needs a list of 'turns'")
    before: dict[str, Any] | None = None  # after a start snapshot, the restore itself checked the state
    if record.get("start") is not None:
        try:
            set_state(env, record["start"])
        except SnapshotError as err:
            raise ValueError(f"the episode's start snapshot cannot be restored: {err}") from None
    else:
        try:
            options = decode(record.get("options"))
        except SnapshotError as err:
            raise ValueError(f"the episode's reset options are damaged: {err}") from None
        obs, info = env.reset(seed=record.get("seed"), options=dict(options) if options else None)
        before = {"observation": obs.get("text"), "state_hash": info.get("state_hash")}
    for n, turn in enumerate(turns, start=1):
        action = next((turn[k] for k in ACTION_KEYS if k in turn), None)
        if not isinstance(action, str):
            raise ValueError(f"turn {n} records no action text (one of {ACTION_KEYS})")
        for key in BEFORE_KEYS:
            if before is not None and key in turn and not _same(turn[key], before[key]):
                return Divergence(n, key, turn[key], before[key])
        obs, reward, term, trunc, info = env.step(action)
        got = _step_fields(reward, term, trunc, info)
        for key in AFTER_KEYS:
            if key in turn and key in got and not _same(turn[key], got[key]):
                return Divergence(n, key, turn[key], got[key])
        before = {"observation": obs.get("text"), "state_hash": info.get("state_hash")}
    return None


def read_transcripts(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, episode) for each episode of a JSONL transcript; ``ValueError`` naming the line when a line is
    not a JSON object."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: an episode is a JSON object, got {type(record).__name__}")
            yield number, record


def write_transcripts(path: str | Path, episodes: list[dict[str, Any]]) -> Path:
    """Write episodes as JSONL, atomically (:func:`~pilot_envs.core.files.atomic_write_text`)."""
    return atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in episodes))


class TranscriptRecorder(gym.Wrapper):
    """Records every episode of the env it wraps as a replayable transcript episode (:attr:`episodes`).

    Wrap a ``gym.make`` env (the header comes from its registration); the recording costs a dict per step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.header = env_header(env)
        self.episodes: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._before: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        start = None if seed is not None else get_state(self.env)  # no seed: the generator's state decides the task
        self._current = {"format": TRANSCRIPT_FORMAT, "env": self.header, "seed": seed,
                         "options": encode(dict(options)) if options else None, "start": start,
                         "task_id": info.get("task_id"), "turns": []}
        self.episodes.append(self._current)
        self._before = {"observation": obs["text"], "state_hash": info.get("state_hash")}
        return obs, info

    def step(self, action: Any):
        obs, reward, term, trunc, info = self.env.step(action)
        if self._current is not None:
            turn = {"action": action, **self._before, **_step_fields(reward, term, trunc, info)}
            self._current["turns"].append(turn)
            self._before = {"observation": obs["text"], "state_hash": info.get("state_hash")}
        return obs, reward, term, trunc, info


def replay_file(path: str | Path, *, limit: int | None = None, out: Any = None) -> tuple[int, int, int]:
    """Replay every episode of a transcript file, printing one line per episode to ``out`` (default stdout):
    ``identical`` or the first divergence. Returns (identical, diverged, not replayable). Envs are made once per
    distinct header and reused."""
    import sys

    out = out or sys.stdout
    envs: dict[str, gym.Env] = {}
    counts = [0, 0, 0]
    try:
        for k, (number, record) in enumerate(read_transcripts(path)):
            if limit is not None and k >= limit:
                break
            name = f"line {number}" + (f" ({record['task_id']})" if record.get("task_id") else "")
            try:
                key = json.dumps(record.get("env"), sort_keys=True)
                if key not in envs:
                    envs[key] = make_from_header(record.get("env"))
                divergence = replay_episode(record, envs[key])
            except (ValueError, TypeError, SnapshotError) as err:
                counts[2] += 1
                print(f"{name}: cannot replay: {err}", file=out, flush=True)
                continue
            counts[0 if divergence is None else 1] += 1
            turns = len(record["turns"])
            print(f"{name}: " + (f"identical ({turns} turns)" if divergence is None else f"DIVERGED at {divergence}"),
                  file=out, flush=True)
    finally:
        for env in envs.values():
            env.close()
    return counts[0], counts[1], counts[2]
