"""Snapshot and restore cost against ``reset()``, per engine, side by side in one run.

    python -m pilot_envs.bench_snapshot [--quick] [--out docs/benchmarks.md]

For each engine: the median time of ``reset()``, of ``pilot_envs.get_state`` and ``set_state`` (into the same env
and into a fresh one) at a state ``depth`` steps into an episode, of a JSON round trip of the snapshot, and the
snapshot's size. The native engine copies its state, so its restore does not grow with the episode; the engines
restored by replay (TextWorld, ScienceWorld) are measured at two depths to show the growth.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import pilot_envs
from pilot_envs import get_state, set_state
from pilot_envs.bench import machine

__all__ = ["measure", "main"]

MARK_START, MARK_END = "<!-- snapshot:start -->", "<!-- snapshot:end -->"
ENGINES: tuple[tuple[str, dict, str | None], ...] = (
    ("PilotALFWorldSmall-v0", {}, None),
    ("PilotALFWorld-v0", {}, None),
    ("PilotTextWorld-v0", {}, "textworld"),
    ("PilotScienceWorld-v0", {"task": "lifespan-longest-lived", "deterministic": True}, "scienceworld"),
)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _walk(env: gym.Env, seed: int, depth: int) -> int:
    """Random admissible commands until ``depth`` steps into an episode that has not ended (a new episode when one
    ends first); returns the steps taken since its reset."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    taken = 0
    while taken < depth:
        cmds = obs["admissible_commands"]
        obs, _, term, trunc, info = env.step(cmds[rng.integers(len(cmds))] if len(cmds) else "look")
        taken += 1
        if term or trunc:
            obs, info = env.reset(seed=int(rng.integers(1 << 30)))
            taken = 0
    return taken


def measure(env_id: str, kwargs: dict, *, depth: int, repeats: int) -> dict[str, float | str | int]:
    """Median milliseconds of reset / get_state / set_state (same env, fresh env) / JSON round trip, and the size."""
    env, fresh = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    try:
        reset_ms = _median_ms(lambda: env.reset(seed=1), repeats)
        depth = _walk(env, 1, depth)
        snapshot = get_state(env)
        text = json.dumps(snapshot)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = {
                "engine": env_id,
                "depth": depth,
                "reset_ms": reset_ms,
                "get_ms": _median_ms(lambda: get_state(env), repeats),
                "set_ms": _median_ms(lambda: set_state(env, snapshot), repeats),
                "set_fresh_ms": _median_ms(lambda: set_state(fresh, snapshot), repeats),
                "json_ms": _median_ms(lambda: json.loads(json.dumps(snapshot)), repeats),
                "kb": len(text) / 1024,
                "how": "copy" if snapshot.get("fields", {}).get("_commands") is None else "replay",
            }
    finally:
        env.close()
        fresh.close()
    return row


def render(rows: list[dict], command: str) -> str:
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {machine()}, pilot-envs {pilot_envs.__version__}. Command: `{command}`. "
        "Medians of wall-clock milliseconds; the state is `depth` steps into an episode (random and oracle "
        "commands).",
        "",
        "| engine | depth | restore by | reset() ms | get_state ms | set_state ms | set_state into a fresh env ms "
        "| JSON round trip ms | size KB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['depth']} | {r['how']} | {r['reset_ms']:.3f} | {r['get_ms']:.3f} | "
                     f"{r['set_ms']:.3f} | {r['set_fresh_ms']:.3f} | {r['json_ms']:.3f} | {r['kb']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilot_envs.bench_snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", default=None, help="update this markdown file (e.g. docs/benchmarks.md)")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 31
    rows = []
    for env_id, kwargs, needs in ENGINES:
        if needs and importlib.util.find_spec(needs) is None:
            print(f"{env_id}: skipped ({needs} is not installed)", file=sys.stderr)
            continue
        depths = (10, 40)
        for depth in depths:
            slow = needs == "scienceworld"
            row = measure(env_id, kwargs, depth=depth, repeats=max(3, repeats // 6) if slow else repeats)
            rows.append(row)
            print(f"{env_id} depth {depth}: reset {row['reset_ms']:.3f} ms, get {row['get_ms']:.3f} ms, "
                  f"set {row['set_ms']:.3f} ms ({row['how']})", file=sys.stderr, flush=True)
    command = "python -m pilot_envs.bench_snapshot" + (" --quick" if args.quick else "") + (
        f" --out {args.out}" if args.out else "")
    table = render(rows, command)
    print(table)
    if args.out:
        from pilot_envs.docs import write_marked

        write_marked(Path(args.out), MARK_START, MARK_END, table + "\n", heading="## Snapshot and restore vs reset()\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
