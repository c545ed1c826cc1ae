"""Bench section: the real ALFWorld engine and the native engine on the same exported games."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gymnasium as gym

from pilot_envs.alfworld.export import export_game
from pilot_envs.alfworld.tasks import split_scene
from pilot_envs.bench import BenchRow, time_steps

__all__ = ["real_alfworld_section"]


def real_alfworld_section(quick: bool = False) -> list[BenchRow]:
    from pilot_envs.alfworld.real_engine import RealALFWorld  # ImportError when alfworld is absent

    scenes = [split_scene("valid_unseen", i) for i in range(0, 134, 27)]  # 5 full-size held-out rooms
    steps = 40 if quick else 150
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_game(s, Path(tmp) / f"game{i}.tw-pddl") for i, s in enumerate(scenes)]
        engines: dict[int, RealALFWorld] = {}

        def reset(i: int) -> object:
            k = i % len(paths)
            if k in engines:
                engines[k].close()
            engines[k] = RealALFWorld(paths[k])
            text, admissible, _ = engines[k].reset()
            return k, admissible

        def step(state: object, u: float) -> tuple[object, bool]:
            k, admissible = state
            _, admissible, won = engines[k].step(admissible[int(u * len(admissible))])
            return (k, admissible), won

        rate, step_ms, reset_ms = time_steps(reset, step, steps=steps, blocks=3, episode_len=25)
        for e in engines.values():
            e.close()
    real = BenchRow(
        "real ALFWorld 0.4.2 engine (TextWorld PDDL), same 5 valid_unseen rooms", rate, step_ms, reset_ms,
        "admissible commands + won; reset includes game load",
    )
    env = gym.make("PilotALFWorld-v0")

    def n_reset(i: int) -> object:
        obs, _ = env.reset(seed=i, options={"scene": scenes[i % len(scenes)]})
        return obs

    def n_step(obs: object, u: float) -> tuple[object, bool]:
        cmds = obs["admissible_commands"]
        obs, _, term, trunc, _ = env.step(cmds[int(u * len(cmds))])
        return obs, term or trunc

    n_rate, n_step_ms, n_reset_ms = time_steps(n_reset, n_step, steps=2000 if quick else 10000, blocks=3, episode_len=25)
    native = BenchRow(
        "PilotALFWorld-v0, same 5 rooms", n_rate, n_step_ms, n_reset_ms,
        f"{n_rate / rate:,.0f}x the real engine's steps/s; reset {reset_ms / n_reset_ms:,.0f}x faster",
    )
    return [real, native]
