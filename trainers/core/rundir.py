"""Run directories are owned: one run per directory, held under a lock, never silently replaced or mixed.

The rules (checked by :func:`claim_run_dir` when a trainer starts, before anything is written):

* **one writer**: the run directory is locked (an OS file lock on ``<run>/.lock``, held until the trainer ends
  or its process dies); a second trainer on the same directory fails at once with :class:`RunDirError` naming
  the process that holds it.
* **a fresh run never replaces a run**: a directory that already holds a run (``run.json``,
  ``metrics.jsonl`` or ``checkpoints/``) is refused unless ``resume`` (continue it) or ``overwrite`` (remove
  that run's files, :data:`RUN_ARTIFACTS`, first). Other files (a job runner's ``stdout.log``) are left alone
  and do not count.
* **resume continues the same run**: the requested config is compared with the saved one, and any
  difference outside :data:`RESUME_FREE_FIELDS` and the config's ``budget_fields`` (the iteration budget) is
  refused, naming each field (:func:`config_mismatch`).

``run.json`` records the config the run started with and every resume (from which checkpoint, when).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from trainers.core.logger import atomic_write_text

__all__ = ["RESUME_FREE_FIELDS", "RUN_ARTIFACTS", "RunDirError", "RunLock", "claim_run_dir", "config_json",
           "config_mismatch", "holds_run", "record_resume"]

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
RUN_ARTIFACTS = (RUN_FILE, "metrics.jsonl", "checkpoints", "tb", "transcripts", "final", "learning_curves.png")
"""What a trainer writes into its run directory (``overwrite`` removes exactly these)."""
RESUME_FREE_FIELDS = frozenset({"iterations", "resume", "overwrite", "progress_bar", "progress_every"})
"""Config fields a resumed run may change: the iteration budget, and flags that do not change its results (a
config class adds its own budget fields with a ``budget_fields`` class attribute)."""


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (locked, holds another run, or a config mismatch)."""


def config_json(config: Any) -> dict[str, Any]:
    """A config dataclass as the JSON-safe dict saved with a run."""
    return json.loads(json.dumps(dict(vars(config)), default=str))


def config_mismatch(saved: Mapping[str, Any], requested: Mapping[str, Any],
                    free: frozenset[str] = RESUME_FREE_FIELDS) -> list[str]:
    """``field: saved X, requested Y`` for each field (outside ``free``) that differs."""
    out = []
    for key in sorted(set(saved) | set(requested)):
        if key in free:
            continue
        a, b = saved.get(key, "<absent>"), requested.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: saved {json.dumps(a)}, requested {json.dumps(b)}")
    return out


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a trainer run."""
    return any((run_dir / name).exists() for name in (RUN_FILE, "metrics.jsonl", "checkpoints"))


class RunLock:
    """An exclusive OS lock on ``<run_dir>/.lock`` (``fcntl.flock``; released when closed or the process dies).

    The lock file says who holds it (pid, host, command line, start time), so the error names them.
    On platforms without ``fcntl`` the lock is skipped.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "an unknown process"
            f.close()
            raise RunDirError(f"{self.path.parent} is in use by another trainer ({holder}); wait for it to end, "
                              "or choose another output_dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"{' '.join(sys.argv)[:300]}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None


def claim_run_dir(run_dir: Path, config: Any, *, saved_config: Mapping[str, Any] | None) -> RunLock:
    """Lock ``run_dir`` and check it for this run (see the module docstring); returns the held lock.

    ``saved_config`` is the config of the checkpoint a resume continues (None: no checkpoint). With ``resume``
    and no checkpoint, the config of ``run.json`` (if any) is compared instead and the run starts fresh.
    """
    lock = RunLock(run_dir).acquire()
    try:
        requested = config_json(config)
        run_file = run_dir / RUN_FILE
        if getattr(config, "resume", False):
            if saved_config is None and run_file.exists():
                saved_config = _read_run_file(run_file).get("config", {})
            if saved_config is not None:
                free = RESUME_FREE_FIELDS | set(getattr(config, "budget_fields", ()))
                diff = config_mismatch(saved_config, requested, free)
                if diff:
                    raise RunDirError(f"cannot resume {run_dir}: the requested config differs from the saved run "
                                      "(only " + ", ".join(sorted(free)) + " may change):\n  "
                                      + "\n  ".join(diff))
        elif holds_run(run_dir):
            if not getattr(config, "overwrite", False):
                raise RunDirError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite "
                                  "to replace it (or choose another output_dir)")
            for name in RUN_ARTIFACTS:
                p = run_dir / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        if saved_config is None:  # a fresh start: record what the run is
            _write_run_file(run_file, {"config": requested, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                       "resumes": []})
    except BaseException:
        lock.release()
        raise
    return lock


def record_resume(run_dir: Path, checkpoint: Path, step: int) -> None:
    """Append a resume (from which checkpoint, at which step, when) to ``run.json``."""
    run_file = run_dir / RUN_FILE
    record = _read_run_file(run_file) if run_file.exists() else {}
    record.setdefault("resumes", []).append(
        {"from": str(checkpoint.relative_to(run_dir)) if checkpoint.is_relative_to(run_dir) else str(checkpoint),
         "step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    _write_run_file(run_file, record)


def _read_run_file(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); move it away to start over") from exc
    if not isinstance(record, dict):
        raise RunDirError(f"{path}: not a run record")
    return record


def _write_run_file(path: Path, record: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(record, indent=1))
