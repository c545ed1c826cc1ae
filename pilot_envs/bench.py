"""``pilot-envs bench``: throughput of every engine, side by side in one run.

Sections are looked up in :data:`SECTIONS` ("module:function" strings, imported only when run); each
returns rows of :class:`BenchRow`. Numbers are medians over repeated blocks, since these machines are noisy.

``--out FILE`` keeps one block per section inside the file's ``env-throughput`` markers
(``<!-- bench:<section>:start -->`` .. ``<!-- bench:<section>:end -->``, each with its own date, machine and
command), so a run rewrites the blocks of the sections it measured and keeps the others (:func:`merge_sections`).
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

__all__ = ["BenchRow", "SectionResult", "SECTIONS", "run_sections", "run_bench", "render_markdown", "merge_sections",
           "bench_command", "time_steps", "native_section", "cpu_name", "machine"]


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


@dataclass(frozen=True)
class SectionResult:
    """What one section measured, or why it could not run (``skipped``)."""

    name: str
    rows: list[BenchRow] = field(default_factory=list)
    skipped: str | None = None


def run_sections(sections: list[str] | None = None, *, quick: bool = False) -> list[SectionResult]:
    """Run the named sections (all by default), each to its own :class:`SectionResult`."""
    names = list(sections or SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:  # before anything runs
        raise KeyError(f"unknown bench section(s) {unknown}; known: {sorted(SECTIONS)}")
    results = []
    for name in names:
        module, _, fn = SECTIONS[name].partition(":")
        try:
            section = getattr(importlib.import_module(module), fn)
            results.append(SectionResult(name, list(section(quick=quick))))
        except ImportError as exc:  # optional engine or module not installed
            results.append(SectionResult(name, skipped=f"{name}: skipped ({exc})"))
    return results


def run_bench(sections: list[str] | None = None, *, quick: bool = False) -> tuple[list[BenchRow], list[str]]:
    """Run the named sections (all by default). Returns rows and notes on sections that could not run."""
    results = run_sections(sections, quick=quick)
    return [row for r in results for row in r.rows], [r.skipped for r in results if r.skipped]


def bench_command(sections: list[str] | None, quick: bool) -> str:
    """The command line that reproduces a run."""
    return "pilot-envs bench" + (f" --sections {','.join(sections)}" if sections else "") + (" --quick" if quick else "")


def cpu_name() -> str:
    """The CPU's model name (``lscpu`` on Linux; the ``platform`` module's answer where that is missing)."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.SubprocessError, StopIteration):
        return platform.processor() or platform.machine() or "CPU"


def machine() -> str:
    """The machine a benchmark ran on, for the header of its numbers: CPU model, cores, Python version."""
    return f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


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


_BLOCK = re.compile(r"<!-- bench:([\w-]+):start -->\n?(.*?)<!-- bench:\1:end -->\n*", re.S)
_REPRODUCE = re.compile(r"^Reproduce: `pilot-envs bench([^`]*)`", re.M)


def merge_sections(old: str, new: Mapping[str, str]) -> str:
    """The body of a benchmarks file's ``env-throughput`` block after a run: ``old`` with the blocks of the sections in
    ``new`` (section -> :func:`render_markdown` text) replaced or added, the others kept, in :data:`SECTIONS` order.

    A body written before per-section blocks (one table, no block markers) keeps the rows that were not measured
    again (a row is known by its engine label), under its own header with its command narrowed to the sections left;
    it is dropped once every section it named has been measured again."""
    blocks = {m.group(1): m.group(2).strip("\n") + "\n" for m in _BLOCK.finditer(old)}
    blocks.update(new)
    order = [name for name in SECTIONS if name in blocks] + [name for name in blocks if name not in SECTIONS]
    parts = [f"<!-- bench:{name}:start -->\n{blocks[name]}<!-- bench:{name}:end -->\n" for name in order]
    legacy = _legacy_remainder(_BLOCK.sub("", old).strip("\n"), new)
    return "\n".join(parts + ([legacy] if legacy else []))


def _row_label(line: str) -> str | None:
    if not line.startswith("|") or line.startswith(("|---", "| engine |")):
        return None
    return line.split("|")[1].strip()


def _legacy_remainder(text: str, new: Mapping[str, str]) -> str:
    """What is left of a single-table body (see :func:`merge_sections`) once the sections in ``new`` replace theirs."""
    if not text:
        return ""
    match = _REPRODUCE.search(text)
    flags = match.group(1) if match else ""
    named = re.search(r"--sections (\S+)", flags)
    sections = named.group(1).split(",") if named else list(SECTIONS)
    left = [name for name in sections if name not in new]
    measured = {_row_label(line) for body in new.values() for line in body.splitlines()} - {None}
    lines = [line for line in text.splitlines() if _row_label(line) not in measured]
    if not left or not any(_row_label(line) for line in lines):
        return ""
    kept = "\n".join(lines) + "\n"
    if match:
        quick = " --quick" if "--quick" in flags else ""
        kept = _REPRODUCE.sub(f"Reproduce: `pilot-envs bench --sections {','.join(left)}{quick}`", kept, count=1)
    return kept
