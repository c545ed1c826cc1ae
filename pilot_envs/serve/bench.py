"""Steps/s through ``pilot-envs serve`` against in-process, side by side in one run:
``python -m pilot_envs.serve.bench [--env PilotALFWorldSmall-v0] [--out docs/benchmarks.md]``.

The server runs in a process of its own (``python -m pilot_envs.serve``, one uvicorn worker), the clients are
:class:`pilot_envs.remote.RemoteEnv` over the WebSocket, in this process: 1 session, then N sessions on N threads.
In-process is ``gym.make`` of the same id: 1 env, then N envs stepped in turn by one thread (what a batched
rollout does). Every setting plays uniformly random admissible commands (resets included in the time, not counted
as steps) for ``--seconds`` of wall time; numbers are medians over ``--repeats`` runs. Each ``--out`` file gets its
block between ``<!-- serve:start -->`` and ``<!-- serve:end -->`` rewritten (added at the end if missing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import pilot_envs  # noqa: F401 - registers the ids
from pilot_envs.bench import machine
from pilot_envs.docs import write_marked
from pilot_envs.remote import RemoteEnv

__all__ = ["main", "play", "measure"]

START, END = "<!-- serve:start -->", "<!-- serve:end -->"
HEADING = (
    "## Throughput through the server\n\n"
    "`python -m pilot_envs.serve.bench` (implementation: `pilot_envs/serve/bench.py`) measures steps/s through\n"
    "`pilot-envs serve` (its own process, one uvicorn worker; clients are `RemoteEnv` over the OpenEnv WebSocket, one\n"
    "thread per session) against the same env in-process (N envs stepped in turn by one thread), side by side in\n"
    "one run: uniformly random admissible commands, resets in the time but not counted, medians of repeats. The server\n"
    "and its protocol: [serving.md](serving.md).\n\n"
)


def play(envs: list[gym.Env], stop: Callable[[], bool], seed: int) -> int:
    """Step ``envs`` in turn with random admissible commands until ``stop()``; returns the steps taken."""
    rng = np.random.default_rng(seed)
    state = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    steps = 0
    while not stop():
        for i, env in enumerate(envs):
            commands = state[i]["admissible_commands"]
            action = commands[int(rng.integers(len(commands)))] if commands else "look"
            obs, _, terminated, truncated, _ = env.step(action)
            state[i] = env.reset()[0] if terminated or truncated else obs
            steps += 1
    return steps


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process (Linux); NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def measure(make: Callable[[], gym.Env], sessions: int, threads: bool, seconds: float, seed: int,
            server_pid: int | None = None) -> tuple[float, float, float]:
    """(steps/s, this process's CPU share, the server's CPU share) of ``sessions`` envs for ``seconds``: one thread
    per env when ``threads``. A share is CPU seconds per wall second (1.0 = one core busy)."""
    envs = [make() for _ in range(sessions)]
    groups = [[env] for env in envs] if threads else [envs]
    counts = [0] * len(groups)
    go, deadline = threading.Event(), [0.0]

    def run(k: int) -> None:
        go.wait()
        counts[k] = play(groups[k], lambda: time.perf_counter() > deadline[0], seed + 1000 * k)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(len(groups))]
    for w in workers:
        w.start()
    cpu0 = _cpu_seconds(server_pid) if server_pid else float("nan")
    own0 = time.process_time()
    start = time.perf_counter()
    deadline[0] = start + seconds
    go.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    own = (time.process_time() - own0) / elapsed
    cpu = (_cpu_seconds(server_pid) - cpu0) / elapsed if server_pid else float("nan")
    for env in envs:
        env.close()
    return sum(counts) / elapsed, own, cpu


def _start_server(env_id: str, sessions: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pilot_envs.serve", env_id, "--port", "0", "--max-sessions",
                             str(sessions + 8), "--idle-timeout", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if " on http://" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split(" ", 1)[0]


Row = tuple[str, float, float, float, float]


def run_bench(env_id: str, sessions: int, seconds: float, repeats: int) -> list[Row]:
    """Rows (sessions, in-process steps/s, served steps/s, client CPU share, server CPU share), medians over
    ``repeats``."""
    proc, url = _start_server(env_id, sessions)
    rows = []
    try:
        for n in (1, sessions):
            local, served, client, server = [], [], [], []
            for r in range(repeats):
                local.append(measure(lambda: gym.make(env_id), n, False, seconds, seed=r)[0])
                rate, own, share = measure(lambda: RemoteEnv(url), n, True, seconds, seed=r, server_pid=proc.pid)
                served.append(rate)
                client.append(own)
                server.append(share)
                print(f"[serve bench] {n} session(s), repeat {r + 1}/{repeats}: in-process {local[-1]:,.0f} "
                      f"steps/s, served {served[-1]:,.0f} steps/s", flush=True)
            rows.append((f"{n} session{'s' if n > 1 else ''}", statistics.median(local), statistics.median(served),
                         statistics.median(client), statistics.median(server)))
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def render(env_id: str, rows: list[Row], command: str, seconds: float, repeats: int) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {env_id}, {seconds:g} s per run, medians of "
             f"{repeats} runs; wall-clock steps/s, server and clients on the same machine (load average "
             f"{os.getloadavg()[0]:.1f} at the end).",
             f"Reproduce: `{command}`", "",
             "| sessions | in-process steps/s | served steps/s | served / in-process | served ms per step per session"
             " | client CPU (cores) | server CPU (cores) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, local, served, client, server in rows:
        n = int(name.split()[0])
        lines.append(f"| {name} | {local:,.0f} | {served:,.0f} | {served / local:.1%} | {1000 * n / served:.2f} | "
                     f"{client:.2f} | {server:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pilot_envs.serve.bench", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="PilotALFWorldSmall-v0")
    p.add_argument("--sessions", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", action="append", default=[],
                   help="rewrite the serve block of this markdown file (repeatable: docs/benchmarks.md, docs/serving.md)")
    args = p.parse_args(argv)
    command = "python -m pilot_envs.serve.bench" + "".join(
        f" --{k} {v}" for k, v in [("env", args.env), ("sessions", args.sessions), ("seconds", args.seconds),
                                   ("repeats", args.repeats)] if v != p.get_default(k))
    print(f"[serve bench] {command}", flush=True)
    rows = run_bench(args.env, args.sessions, args.seconds, args.repeats)
    body = render(args.env, rows, command + "".join(f" --out {out}" for out in args.out), args.seconds, args.repeats)
    print(body)
    for out in args.out:
        write_marked(Path(out), START, END, body, heading=HEADING)
        print(f"[serve bench] wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
