"""Progress lines for long work: at least one line every ``every`` seconds while SFT, rollouts, updates and
evaluation run, so a run on a slow machine (or in a log file, where tqdm bars do not show) is never silent.

A :class:`Heartbeat` is called often and cheaply (every turn, every micro-batch, every SFT step) with a function
that builds the message; it prints only when ``every`` seconds have passed since its last line. Where one call can
take longer than that (a turn of a large batch on a CPU), :meth:`Heartbeat.ticking` also repeats the latest status
from a background thread. Lines go to stderr: ``[grpo 3m12s] iteration 4/40: rollouts, turn 7/15, 412 env steps, success so far 0.19``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

__all__ = ["Heartbeat", "eta", "fmt_seconds"]


def fmt_seconds(s: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    s = max(0, int(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def eta(done: float, total: float, elapsed: float) -> str:
    """Time left at the rate so far (``?`` before any progress)."""
    if done <= 0 or total <= done:
        return "?" if done <= 0 else "0s"
    return fmt_seconds(elapsed * (total - done) / done)


class Heartbeat:
    """Prints ``message()`` when ``every`` seconds have passed since the last line (0 or ``enabled=False``: never).

    Args:
        name: shown in front of every line with the time since the heartbeat was made.
        every: the longest silence, in seconds.
        enabled: False on non-main processes of a distributed run.
        stream: where lines go (stderr).
    """

    def __init__(self, name: str, every: float = 30.0, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.name = name
        self.every = every
        self.enabled = enabled and every > 0
        self.stream = stream
        self.start = self.last = time.monotonic()
        self._latest: Callable[[], str] | None = None
        self._lock = threading.Lock()

    def __call__(self, message: Callable[[], str], *, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._latest = message
            if force or time.monotonic() - self.last >= self.every:
                self._emit(message())

    def _emit(self, text: str) -> None:
        """Print one line now (the caller holds the lock)."""
        self.last = now = time.monotonic()
        print(f"[{self.name} {fmt_seconds(now - self.start)}] {text}", file=self.stream or sys.stderr, flush=True)

    @contextlib.contextmanager
    def ticking(self) -> Iterator[Heartbeat]:
        """While inside, a background thread repeats the latest status (marked ``still working``) whenever
        ``every`` seconds pass without a line, so one long call cannot leave the run silent."""
        if not self.enabled:
            yield self
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(min(1.0, self.every)):
                with self._lock:  # the latest status stays the caller's: repeats are not nested
                    latest = self._latest
                    if latest is not None and time.monotonic() - self.last >= self.every:
                        self._emit(f"still working: {latest()}")

        thread = threading.Thread(target=tick, name=f"heartbeat-{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
