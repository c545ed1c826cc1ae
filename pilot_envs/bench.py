"""``pilot-envs bench``: throughput of every engine, side by side in one run.

Sections are looked up in :data:`SECTIONS` ("module:function" strings, imported only when run); each
returns rows of :class:`BenchRow`. Numbers are medians over repeated blocks, since these machines are noisy.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

__all__ = ["BenchRow", "SECTIONS", "run_bench", "render_markdown", "time_steps", "native_section"]


@dataclass(frozen=True)
class BenchRow:
    engine: str
    steps_per_s: float  # including resets (episodes as an agent plays them), per second of this process's CPU time
    step_ms: float  # median time of one step
    reset_ms: float  # median time of one reset
    notes: str = ""


def time_steps(
    reset: Callable[[int], object],
    step: Callable[[object, float], tuple[object, bool]],
    *,
    steps: int,
    blocks: int = 5,
    seed: int = 0,
    episode_len: int = 50,
    cpu: bool = True,
) -> tuple[float, float, float]:
    """Drive an engine with random choices; returns (median steps/s incl. resets, median step ms, median reset ms).

    Rates are per second of this process's CPU time (``time.process_time``), so they hold on a busy machine;
    for engines that run in another process (a JVM) a section should use wall time instead (``cpu=False``).

    ``reset(i)`` starts episode i and returns a state; ``step(state, u)`` takes a uniform draw ``u`` in [0, 1) to
    pick an action and returns (state, done).
    """
    draws = np.random.default_rng(seed).random(steps * blocks).tolist()
    rates, step_times, reset_times = [], [], []
    episode = 0
    k = 0
    clock = time.process_time if cpu else time.perf_counter
    for _ in range(blocks):
        t_block = clock()
        t = time.perf_counter()
        state = reset(episode)
        reset_times.append(time.perf_counter() - t)
        length = 0
        for _ in range(steps):
            t = time.perf_counter()
            state, done = step(state, draws[k])
            step_times.append(time.perf_counter() - t)
            k += 1
            length += 1
            if done or length >= episode_len:
                episode += 1
                t = time.perf_counter()
                state = reset(episode)
                reset_times.append(time.perf_counter() - t)
                length = 0
        rates.append(steps / (clock() - t_block))
    return statistics.median(rates), statistics.median(step_times) * 1e3, statistics.median(reset_times) * 1e3


def _gym_driver(env: gym.Env, options: Callable[[int], dict | None] = lambda i: None):
    def reset(i: int) -> object:
        obs, _ = env.reset(seed=i, options=options(i))
        return obs

    def step(obs: object, u: float) -> tuple[object, bool]:
        cmds = obs["admissible_commands"]
        obs, _, term, trunc, _ = env.step(cmds[int(u * len(cmds))] if len(cmds) else "look")
        return obs, term or trunc

    return reset, step


def native_section(quick: bool = False) -> list[BenchRow]:
    """PilotALFWorld through ``gym.make`` (all wrappers), full info and admissible commands every step."""
    rows = []
    steps = 4000 if quick else 20000
    for env_id, label, opts in (
        ("PilotALFWorld-v0", "PilotALFWorld-v0 (procedural tasks)", lambda i: None),
        ("PilotALFWorld-v0", "PilotALFWorld-v0 (valid_unseen tasks)", lambda i: {"split": "valid_unseen", "task_index": i % 134}),
        ("PilotALFWorldSmall-v0", "PilotALFWorldSmall-v0", lambda i: None),
    ):
        env = gym.make(env_id)
        rate, step_ms, reset_ms = time_steps(*_gym_driver(env, opts), steps=steps)
        env.close()
        rows.append(BenchRow(label, rate, step_ms, reset_ms, "random admissible commands; info incl. expert plan"))
    return rows


SECTIONS: dict[str, str] = {
    "native": "pilot_envs.bench:native_section",
    "alfworld": "pilot_envs.alfworld.bench_real:real_alfworld_section",
    "textworld": "pilot_envs.textworld.bench:textworld_section",
    "scienceworld": "pilot_envs.scienceworld.bench:scienceworld_section",
}


def run_bench(sections: list[str] | None = None, *, quick: bool = False) -> tuple[list[BenchRow], list[str]]:
    """Run the named sections (all by default). Returns rows and notes on sections that could not run."""
    rows, skipped = [], []
    for name in sections or list(SECTIONS):
        if name not in SECTIONS:
            raise KeyError(f"unknown bench section {name!r}; known: {sorted(SECTIONS)}")
        module, _, fn = SECTIONS[name].partition(":")
        try:
            section = getattr(importlib.import_module(module), fn)
            rows.extend(section(quick=quick))
        except ImportError as exc:  # optional engine or module not installed
            skipped.append(f"{name}: skipped ({exc})")
    return rows, skipped


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def render_markdown(rows: list[BenchRow], skipped: list[str], command: str) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; one process, one core; load average "
        f"{os.getloadavg()[0]:.1f} at the end. steps/s are per second of the process's CPU time (robust to a busy "
        "machine); step/reset ms are wall-clock medians.",
        f"Reproduce: `{command}`",
        "",
        "| engine | steps/s (incl. resets) | step ms (median) | reset ms (median) | notes |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {r.engine} | {r.steps_per_s:,.0f} | {r.step_ms:.3f} | {r.reset_ms:.3f} | {r.notes} |" for r in rows]
    lines += [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"
