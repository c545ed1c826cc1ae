"""Bench section: the raw ScienceWorld engine and PilotScienceWorld-v0 in lockstep on the same command scripts.

Every engine replays the same scripts, ScienceWorld's own gold action paths of a few tasks (realistic episodes:
doors, the kitchen's ~3,000 valid actions, heating, waiting), one step of each engine in turn, so each sees the
same rooms and the same machine noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import scienceworld  # noqa: F401 - ImportError (section skipped) when the engine is not installed

from pilot_envs.bench import BenchRow
from pilot_envs.scienceworld.engine import require_engine

__all__ = ["scienceworld_section"]

ENV_ID = "PilotScienceWorld-v0"
EPISODES = tuple((task, v) for v in (0, 1) for task in ("boil", "find-living-thing", "chemistry-mix", "grow-plant"))
EPISODE_LEN = 40


def scienceworld_section(quick: bool = False) -> list[BenchRow]:
    try:
        require_engine()
    except gym.error.DependencyNotInstalled as exc:
        raise ImportError(str(exc)) from exc
    from scienceworld import ScienceWorldEnv, __version__

    raws = [ScienceWorldEnv("", envStepLimit=10**9) for _ in range(2)]  # one steps fully, one bare
    scripts = []
    for task, variation in EPISODES:
        raws[0].load(task, variation, "", True)
        scripts.append([c for c in raws[0].get_gold_action_sequence() if c != "look around"][:EPISODE_LEN])
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="pilot_envs.scienceworld.env:PilotScienceWorldEnv", max_episode_steps=100)
    tasks = tuple(dict.fromkeys(t for t, _ in EPISODES))
    envs = [gym.make(ENV_ID, task=tasks, gold_path=False, deterministic=d) for d in (False, True)]

    def raw_engine(sw: ScienceWorldEnv, full: bool) -> tuple[Callable, Callable]:
        def reset(task: str, variation: int) -> None:
            sw.load(task, variation, "", False)
            sw.reset()

        return reset, (sw.step if full else sw.server.step)

    def env_engine(env: gym.Env) -> tuple[Callable, Callable]:
        return (lambda task, variation: env.reset(seed=0, options={"task": task, "variation": variation})), env.step

    engines = (
        (f"raw ScienceWorld {__version__}: load + reset, ScienceWorldEnv.step", *raw_engine(raws[0], True),
         "the package's API: observation + info (score, look, inventory, task, valid actions)"),
        (f"{ENV_ID}", *env_engine(envs[0]),
         "full observation + info (valid actions, goal checklist, state hash), through gym.make's wrappers"),
        (f"{ENV_ID}, deterministic=True", *env_engine(envs[1]),
         "as above, JVM with a constant identity hash (reproducible wording)"),
        (f"raw ScienceWorld {__version__}: server.step only", *raw_engine(raws[1], False),
         "the simulator alone: no valid actions, score or look (a lower bound, not a usable env)"),
    )
    steps = 40 if quick else 400
    times: list[list[float]] = [[] for _ in engines]
    resets: list[list[float]] = [[] for _ in engines]
    try:
        for warm_up, budget in ((True, 20), (False, steps)):
            done, episode = 0, 0
            while done < budget:
                task, variation = EPISODES[episode % len(EPISODES)]
                order = list(range(len(engines)))[episode % len(engines):] + list(range(len(engines)))[: episode % len(engines)]
                for k in order:
                    t0 = time.perf_counter()
                    engines[k][1](task, variation)
                    resets[k].append(time.perf_counter() - t0)
                for pos, command in enumerate(scripts[episode % len(EPISODES)]):
                    for k in order[pos % len(order):] + order[: pos % len(order)]:  # rotate who goes first
                        t0 = time.perf_counter()
                        engines[k][2](command)
                        times[k].append(time.perf_counter() - t0)
                done, episode = done + len(scripts[episode % len(EPISODES)]), episode + 1
            if warm_up:
                times, resets = [[] for _ in engines], [[] for _ in engines]
        rows = []
        for k, (label, _, _, note) in enumerate(engines):
            if k in (1, 2):
                ratio = statistics.median(times[k]) / statistics.median(times[0])
                note += f"; step time {ratio:.2f}x the raw ScienceWorldEnv.step"
            total = sum(times[k]) + sum(resets[k])
            rows.append(BenchRow(label, len(times[k]) / total, statistics.median(times[k]) * 1e3,
                                 statistics.median(resets[k]) * 1e3, note))
        return rows
    finally:
        for env in envs:
            env.close()
        for sw in raws:
            sw.close()
