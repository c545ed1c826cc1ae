"""Run logging: namespaced scalar metrics to JSONL and TensorBoard, and a learning-curve PNG.

Metric names are namespaced (``env/success_rate``, ``losses/policy``, ``policy/entropy``,
``perf/tokens_per_s`` ...). ``metrics.jsonl`` holds one JSON object per logged step
(``{"step": 3, "env/success_rate": 0.25, ...}``); TensorBoard event files go to ``tb/``. Only the main
process of a distributed run should log (pass ``enabled=False`` elsewhere). Episode transcripts are JSONL
files, one trajectory per line, written atomically (:func:`save_transcripts`). The module is called
``logger`` so it never shadows the standard library's ``logging``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilot_envs.core.files import atomic_write_text
from pilot_envs.replay import TRANSCRIPT_FORMAT

if TYPE_CHECKING:
    from trainers.core.rollout import Trajectory

__all__ = ["DEFAULT_CURVES", "RunLogger", "atomic_write_text", "plot_learning_curves", "read_metrics", "save_transcripts", "transcript_record"]

DEFAULT_CURVES: tuple[str, ...] = (
    "env/success_rate",
    "eval/success_rate",
    "env/progress",
    "env/invalid_action_rate",
    "losses/policy",
    "policy/entropy",
)
"""Metrics drawn by :func:`plot_learning_curves` by default (those present in the log)."""


class RunLogger:
    """Writes metrics to ``out_dir/metrics.jsonl`` and TensorBoard (``out_dir/tb``).

    Args:
        out_dir: the run directory.
        tensorboard: also write TensorBoard events (needs the ``tensorboard`` package).
        enabled: False makes every call a no-op (non-main processes).
        resume_step: when resuming, records with ``step > resume_step`` (logged after the checkpoint a
            resumed run restarts from) are dropped from the JSONL, so the file reads like one run.
    """

    def __init__(
        self, out_dir: str | Path, *, tensorboard: bool = True, enabled: bool = True, resume_step: int | None = None
    ) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.path = self.out_dir / "metrics.jsonl"
        self._tb: Any = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=resume_step)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Append ``metrics`` at ``step`` (non-finite values are written as null to JSON)."""
        if not self.enabled:
            return
        clean = {k: _num(v) for k, v in sorted(metrics.items())}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": int(step), **clean}) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if v is not None:
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def plot(self, path: str | Path | None = None, keys: Sequence[str] = DEFAULT_CURVES, title: str = "") -> Path | None:
        """Draw the learning curves of ``keys`` to ``path`` (default ``out_dir/learning_curves.png``)."""
        if not self.enabled:
            return None
        return plot_learning_curves(self.path, path or self.out_dir / "learning_curves.png", keys=keys, title=title)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _num(v: Any) -> float | None:
    x = float(v)
    return x if math.isfinite(x) else None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_learning_curves(
    metrics_path: str | Path, out: str | Path, *, keys: Sequence[str] = DEFAULT_CURVES, title: str = ""
) -> Path:
    """One panel per metric in ``keys`` that the log contains, value against step; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    present = [k for k in keys if any(r.get(k) is not None for r in records)]
    n = max(1, len(present))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, present, strict=False):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        xs, ys = zip(*pts, strict=True) if pts else ((), ())
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ------------------------------------------------------------------------------------------- transcripts
def transcript_record(traj: Trajectory, tokenizer: Any | None = None, env: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """A JSON-safe dict of one trajectory (prompts decoded when a tokenizer is given). ``env``: how to make the env
    again (:func:`pilot_envs.replay.env_header`), so that ``pilot-envs replay`` can re-run the episode."""
    return {
        "format": TRANSCRIPT_FORMAT,
        "env": env,
        "traj_id": traj.traj_id,
        "group_id": traj.group_id,
        "seed": traj.task.seed,
        "options": dict(traj.task.options or {}),
        "task_type": traj.task_type,
        "task_id": traj.task_id,
        "won": traj.won,
        "terminated": traj.terminated,
        "truncated": traj.truncated,
        "return": traj.total_reward,
        "progress": traj.progress,
        "turns": [
            {
                **({"prompt": tokenizer.decode(t.prompt_ids)} if tokenizer is not None else {}),
                "observation": t.observation,
                "response": t.response_text,
                "command": t.command,
                "reward": t.reward,
                "progress": t.progress,
                "action_valid": t.action_valid,
                "format_ok": t.format_ok,
                "plan_score": t.plan_score,
                "won": t.won,
                "state_hash": t.state_hash,
            }
            for t in traj.turns
        ],
    }


def save_transcripts(trajs: Sequence[Trajectory], path: str | Path, tokenizer: Any | None = None,
                     env: dict[str, Any] | None = None) -> Path:
    """Write one JSON line per trajectory, atomically (:func:`atomic_write_text`)."""
    return atomic_write_text(path, "".join(json.dumps(transcript_record(traj, tokenizer, env), default=str) + "\n"
                                           for traj in trajs))
