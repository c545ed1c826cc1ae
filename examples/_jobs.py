"""Run an example's training jobs as worker processes, ``parallel`` at a time (shared by the comparison examples).

Each job is the example script itself with ``--worker JOB`` (one process per run: its own wall time, peak RSS
and torch threads); its output goes to ``<out>/<job>/stdout.log``. A job whose command is not known yet
(``command(job)`` returns None, e.g. it needs another run's result) waits until it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CHILD_ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
"""Added to every worker's environment: one BLAS thread (tiny matmuls), no tokenizer thread pool."""


def run_jobs(
    jobs: Sequence[str], command: Callable[[str], list[str] | None], out: Path, parallel: int = 1, poll_s: float = 2.0
) -> None:
    """Start ``command(job)`` for every job (at most ``parallel`` at once) and wait for all of them.

    Exits the example with a pointer to the log when a worker fails; the other workers are stopped.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    pending, running = list(jobs), []
    env = {**os.environ, **CHILD_ENV}
    try:
        while pending or running:
            while len(running) < parallel:
                ready = next(((j, c) for j in pending if (c := command(j)) is not None), None)
                if ready is None:
                    break
                job, cmd = ready
                pending.remove(job)
                (out / job).mkdir(parents=True, exist_ok=True)
                log = open(out / job / "stdout.log", "w")  # noqa: SIM115 (closed when the worker ends)
                running.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
                print(f"started {job}", flush=True)
            if not running and pending:
                sys.exit(f"jobs {pending} can never start (their command stays None)")
            time.sleep(poll_s)
            for item in list(running):
                job, proc, log = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    print(f"{job} finished (exit {proc.returncode})", flush=True)
                    if proc.returncode:
                        sys.exit(f"{job} failed: see {out / job / 'stdout.log'}")
    finally:
        for _, proc, log in running:  # a failure or Ctrl-C: do not leave workers training in the background
            proc.terminate()
            proc.wait()
            log.close()
