"""Bench section: the raw TextWorld engine and PilotTextWorld-v0 in lockstep on the same cached games.

Both play the same episodes with the same commands (drawn from the raw engine's admissible commands), one step
of each in turn, so machine noise hits both alike; the adapter's overhead is the median per-step difference.
"""

from __future__ import annotations

import statistics
import time
import warnings

import gymnasium as gym
import numpy as np
import textworld

from pilot_envs.bench import BenchRow
from pilot_envs.textworld.games import find_game, make_settings

__all__ = ["textworld_section"]

ENV_ID = "PilotTextWorld-v0"
GAMES = 4
EPISODE = 30
CONFIGS = (("treasure_hunter", 10, None), ("cooking", None, {"recipe": 2, "take": 2, "go": 6, "open": True, "cut": True}))
INFOS = {"admissible_commands": True, "policy_commands": True, "won": True, "lost": True, "moves": True, "objective": True}


def _lockstep(raw, env, paths, steps: int, seed: int = 0) -> dict[str, list[float]]:
    """Step times and reset times of both engines over the same episodes and commands."""
    rng = np.random.default_rng(seed)
    t: dict[str, list[float]] = {"raw": [], "env": [], "raw_reset": [], "env_reset": []}
    episode, length, commands = 0, 0, None
    for k in range(steps):
        if commands is None or length == EPISODE:
            t0 = time.perf_counter()
            raw.load(str(paths[episode % GAMES]))
            raw.seed(episode + 1)
            commands = raw.reset()["admissible_commands"]
            t1 = time.perf_counter()
            env.reset(seed=episode, options={"split": "train", "task_index": episode % GAMES})
            t["raw_reset"].append(t1 - t0)
            t["env_reset"].append(time.perf_counter() - t1)
            episode, length = episode + 1, 0
        command = commands[int(rng.integers(len(commands)))]
        for name in ("raw", "env") if k % 2 else ("env", "raw"):  # alternate who goes first
            t0 = time.perf_counter()
            if name == "raw":
                state, _, done = raw.step(command)
            else:
                _, _, term, trunc, _ = env.step(command)
            t[name].append(time.perf_counter() - t0)
        commands, length = state["admissible_commands"], length + 1
        if done or term or trunc:
            commands = None
    return t


def textworld_section(quick: bool = False) -> list[BenchRow]:
    steps = 300 if quick else 3000
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="pilot_envs.textworld.env:PilotTextWorldEnv", max_episode_steps=50)
    rows = []
    for challenge, level, settings in CONFIGS:
        full = make_settings(challenge, level, settings)
        paths = [find_game(challenge, full, "train", i)[1] for i in range(GAMES)]
        raw = textworld.start(str(paths[0]), textworld.EnvInfos(**INFOS))
        env = gym.make(ENV_ID, challenge=challenge, level=level, settings=settings)
        with warnings.catch_warnings():  # Jericho warns at each step that it cannot list actions itself
            warnings.simplefilter("ignore")
            _lockstep(raw, env, paths, 60, seed=1)  # warm-up
            t = _lockstep(raw, env, paths, steps)
        raw.close()
        env.close()
        label = f"{challenge} " + ", ".join(f"{k}={v}" for k, v in full.items() if v is not False)
        diff = statistics.median(e - r for r, e in zip(t["raw"], t["env"], strict=True))
        for name, title, note in (
            ("raw", f"raw TextWorld {textworld.__version__}: {label}",
             "textworld.start + EnvInfos(admissible_commands, policy_commands, won, lost, moves, objective)"),
            ("env", f"{ENV_ID}: {label}",
             f"through gym.make, full observation + info; adapter overhead {diff * 1e3:.2f} ms/step "
             f"({100 * diff / statistics.median(t['raw']):+.1f}%, median paired difference)"),
        ):
            total = sum(t[name]) + sum(t[f"{name}_reset"])
            rows.append(BenchRow(title, len(t[name]) / total, statistics.median(t[name]) * 1e3,
                                 statistics.median(t[f"{name}_reset"]) * 1e3, note))
    return rows
