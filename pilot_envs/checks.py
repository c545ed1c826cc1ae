"""Conformance checks every registered env must pass, shipped in the package so users can run them on
their own envs (the test suite runs them over the whole registry).

Each check raises ``AssertionError`` with a message saying what differed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "rollout_digest",
    "random_admissible_policy",
    "expert_policy",
    "play_until_terminated",
    "check_no_op_after_termination",
    "check_determinism",
    "check_pickle",
    "check_vector_sync_async",
    "check_reward_modes_same_dynamics",
    "obs_equal",
    "choose_action",
    "snapshot_then_continue",
    "restore_then_continue",
    "check_snapshot",
]

Policy = Callable[[dict[str, Any], dict[str, Any], np.random.Generator], str]


def random_admissible_policy(obs: dict[str, Any], info: dict[str, Any], rng: np.random.Generator) -> str:
    """A uniformly random admissible command (or ``look`` when there is none)."""
    cmds = obs["admissible_commands"]
    return str(cmds[int(rng.integers(len(cmds)))]) if len(cmds) else "look"


def expert_policy(obs: dict[str, Any], info: dict[str, Any], rng: np.random.Generator) -> str:
    """The env's oracle command (``info["expert_action"]``), or ``look`` when it has none."""
    return info["expert_action"] or "look"


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in sorted(x.items())}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def obs_equal(a: Any, b: Any) -> bool:
    return json.dumps(_jsonable(a), sort_keys=True) == json.dumps(_jsonable(b), sort_keys=True)


def rollout_digest(
    env: gym.Env,
    *,
    seed: int,
    steps: int = 30,
    options: dict[str, Any] | None = None,
    policy: Policy = random_admissible_policy,
) -> str:
    """A hash of everything observable along a seeded rollout (observations, rewards, flags, info)."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    obs, info = env.reset(seed=seed, options=options)
    h.update(json.dumps(_jsonable([obs, info]), sort_keys=True).encode())
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(policy(obs, info, rng))
        h.update(json.dumps(_jsonable([obs, float(r), term, trunc, info]), sort_keys=True).encode())
        if term or trunc:
            obs, info = env.reset()
            h.update(json.dumps(_jsonable([obs, info]), sort_keys=True).encode())
    return h.hexdigest()


def check_determinism(make: Callable[[], gym.Env], *, seed: int = 0, steps: int = 30) -> str:
    """Two instances with the same seed produce identical rollouts. Returns the digest."""
    a, b = make(), make()
    try:
        da, db = rollout_digest(a, seed=seed, steps=steps), rollout_digest(b, seed=seed, steps=steps)
    finally:
        a.close()
        b.close()
    assert da == db, "two env instances with the same seed diverged"
    return da


def check_pickle(make: Callable[[], gym.Env], *, seed: int = 0, steps: int = 5) -> None:
    """A pickled mid-episode env continues exactly like the original."""
    env = make()
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(random_admissible_policy(obs, info, rng))
        if term or trunc:
            obs, info = env.reset()
    clone = pickle.loads(pickle.dumps(env))
    try:
        for _ in range(steps):
            action = random_admissible_policy(obs, info, rng)
            out_a, out_b = env.step(action), clone.step(action)
            assert obs_equal(out_a, out_b), f"pickled env diverged after {action!r}"
            obs, _, term, trunc, info = out_a
            if term or trunc:
                break
    finally:
        env.close()
        clone.close()


def check_vector_sync_async(env_id: str, *, num_envs: int = 2, seed: int = 0, steps: int = 8, **kwargs: Any) -> None:
    """``gym.make_vec`` sync and async (default shared memory) give identical observations."""
    envs = {
        mode: gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs) for mode in ("sync", "async")
    }
    try:
        outs = {mode: v.reset(seed=seed) for mode, v in envs.items()}
        assert obs_equal(outs["sync"][0], outs["async"][0]), "reset observations differ between sync and async"
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            obs = outs["sync"][0]
            actions = [
                random_admissible_policy({"admissible_commands": obs["admissible_commands"][i]}, {}, rng)
                for i in range(num_envs)
            ]
            outs = {mode: v.step(actions) for mode, v in envs.items()}
            for k in range(4):
                assert obs_equal(outs["sync"][k], outs["async"][k]), f"step output {k} differs between sync and async"
    finally:
        for v in envs.values():
            v.close()


def check_reward_modes_same_dynamics(env_id: str, *, seed: int = 0, steps: int = 30, **kwargs: Any) -> None:
    """Observations, termination and info (all but the reward) do not depend on ``reward_mode``."""
    traces = []
    for mode in ("sparse", "progress", "milestone"):
        env = gym.make(env_id, reward_mode=mode, **kwargs)
        rng = np.random.default_rng(seed)
        obs, info = env.reset(seed=seed)
        trace = [copy.deepcopy((obs, info))]
        for _ in range(steps):
            obs, _, term, trunc, info = env.step(random_admissible_policy(obs, info, rng))
            trace.append(copy.deepcopy((obs, term, trunc, info)))
            if term or trunc:
                break
        env.close()
        traces.append(trace)
    assert obs_equal(traces[0], traces[1]) and obs_equal(traces[0], traces[2]), "reward_mode changed the dynamics"


def play_until_terminated(
    env: gym.Env,
    *,
    seed: int,
    options: dict[str, Any] | None = None,
    policy: Policy = expert_policy,
    max_steps: int = 10_000,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Play one episode with ``policy`` until it terminates. Returns (final obs, final info, steps taken).

    Fails when the episode is truncated first (or runs past ``max_steps``): the policy must solve the task.
    """
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed, options=options)
    for step in range(1, max_steps + 1):
        obs, _, term, trunc, info = env.step(policy(obs, info, rng))
        if term:
            return obs, info, step
        assert not trunc, f"the episode (seed {seed}) was truncated after {step} steps before the policy ended it"
    raise AssertionError(f"the policy did not end the episode (seed {seed}) in {max_steps} steps")


def check_no_op_after_termination(
    env: gym.Env,
    final_obs: dict[str, Any],
    final_info: dict[str, Any],
    actions: Sequence[Any],
    *,
    elapsed: int,
) -> None:
    """Stepping a terminated episode is a no-op (the contract of ``TextTaskEnv``, "Episode End").

    ``env`` has just terminated with ``(final_obs, final_info)`` after ``elapsed`` steps. Every action of
    ``actions`` must return reward exactly 0.0, ``terminated=True``, the final observation unchanged and the
    final info with ``action_valid=False`` and ``command=""``; ``truncated`` is False unless the step limit of
    ``env.spec`` (``TimeLimit``, which keeps counting) is reached. The world's ``state_hash`` must not move,
    and the env must warn once, saying to call ``reset()``.
    """
    limit = env.spec.max_episode_steps if env.spec is not None else None
    expected_info = {**final_info, "action_valid": False, "command": ""}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, action in enumerate(actions, start=1):
            obs, reward, term, trunc, info = env.step(action)
            assert type(reward) is float and reward == 0.0, f"step {i} after termination paid {reward!r}"
            assert term is True, f"step {i} after termination returned terminated={term!r}"
            expected_trunc = limit is not None and elapsed + i >= limit
            assert trunc is expected_trunc, f"step {i} after termination returned truncated={trunc!r}"
            assert obs_equal(obs, final_obs), f"step {i} after termination ({action!r}) changed the observation"
            assert obs_equal(info, expected_info), f"step {i} after termination ({action!r}) changed the info"
    backend = getattr(env.unwrapped, "backend", None)
    if backend is not None:
        assert backend.state_hash() == final_info["state_hash"], "stepping after termination changed the world"
    if actions:
        ours = [w for w in caught if "reset()" in str(w.message) and "terminated" in str(w.message)]
        assert len(ours) == 1, f"expected one warning to call reset(), got {[str(w.message) for w in caught]}"


def choose_action(choice: int | str | None, obs: dict[str, Any], info: dict[str, Any]) -> str:
    """An action from a recorded choice: an int picks an admissible command (modulo their number), None the
    oracle's command, a string is sent as it is (any text: thoughts, plans, garbage). ``look`` where the
    observation lists no commands or the info has no oracle."""
    if choice is None:
        return info.get("expert_action") or "look"
    if isinstance(choice, int):
        cmds = obs.get("admissible_commands", ())
        return str(cmds[choice % len(cmds)]) if len(cmds) else "look"
    return choice


def _continue(env: gym.Env, choices: Sequence[int | str | None], obs: dict[str, Any], info: dict[str, Any]) -> list:
    """Play ``choices`` (no reset on termination: later steps are the contract's no-ops), then ``reset()`` once
    without a seed (which depends on the env's random generator); everything observable, as snapshot data."""
    from pilot_envs.core.snapshot import encode

    trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the no-op steps after termination warn
        for choice in choices:
            obs, reward, term, trunc, info = env.step(choose_action(choice, obs, info))
            trace.append(encode([obs, float(reward), bool(term), bool(trunc), info]))
        trace.append(encode(list(env.reset())))
    return trace


def snapshot_then_continue(
    env: gym.Env, *, seed: int, before: Sequence[int | str | None], after: Sequence[int | str | None]
) -> tuple[dict[str, Any], tuple[dict[str, Any], dict[str, Any]], list]:
    """Reset with ``seed``, play ``before``, take a snapshot, play ``after``: the snapshot, the observation and
    info it was taken at, and everything ``after`` showed."""
    from pilot_envs.core.snapshot import get_state

    obs, info = env.reset(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for choice in before:
            obs, _, _, _, info = env.step(choose_action(choice, obs, info))
    snapshot = get_state(env)
    return snapshot, (obs, info), _continue(env, after, obs, info)


def restore_then_continue(
    env: gym.Env, snapshot: dict[str, Any], at: tuple[dict[str, Any], dict[str, Any]], after: Sequence[int | str | None]
) -> list:
    """Restore ``snapshot`` into ``env``, then play ``after`` from the observation and info ``at`` (those the
    snapshot was taken at) as :func:`snapshot_then_continue` did."""
    from pilot_envs.core.snapshot import get_state, set_state

    set_state(env, snapshot)
    again = get_state(env)
    assert again["fields"] == snapshot["fields"], "a restored env's snapshot differs from the one restored"
    return _continue(env, after, *at)


def check_snapshot(
    env: gym.Env,
    fresh: gym.Env,
    *,
    seed: int,
    before: Sequence[int | str | None],
    after: Sequence[int | str | None],
) -> None:
    """A snapshot restores exactly. In ``env``: reset with ``seed``, play ``before`` (choices as
    :func:`choose_action` reads them), take a snapshot, play ``after`` (A); restore the snapshot and play ``after``
    again (B). In ``fresh`` (an env made the same way): restore the snapshot after a trip through JSON and play
    ``after`` once more (C). A, B and C must be equal step by step (observations, rewards, flags, infos, with their
    types), and so must a ``reset()`` without a seed that follows them."""
    snapshot, at, a = snapshot_then_continue(env, seed=seed, before=before, after=after)
    b = restore_then_continue(env, snapshot, at, after)
    c = restore_then_continue(fresh, json.loads(json.dumps(snapshot)), at, after)
    for name, other in (("restored in the same env", b), ("restored from JSON in a fresh env", c)):
        assert len(a) == len(other), f"{name}: {len(other)} steps instead of {len(a)}"
        for i, (x, y) in enumerate(zip(a, other, strict=True)):
            what = f"step {i + 1} after the snapshot" if i < len(after) else "the reset after the episode"
            assert x == y, f"{name}: {what} differs from continuing the original"
