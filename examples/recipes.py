"""The training recipe the CPU examples share: the GRPO example's settings (env, tiny model, SFT warm start,
learning rate, episodes per iteration, evaluation). ``examples/train_grpo.py`` trains with it; the HiPER and
EPO comparisons build every arm from it, so their GRPO arms are this recipe with episode-level GRPO.

Imported by the examples as ``from recipes import GRPO_RECIPE`` (a script's own folder is on ``sys.path``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilot_envs import docs

__all__ = ["GRPO_ADVANTAGE", "GRPO_RECIPE", "TASK_TYPES", "budgeted", "plot_curves", "sft_rl_table", "write_marked"]

TASK_TYPES = ["pick_and_place_simple", "pick_clean_then_place_in_recep", "pick_heat_then_place_in_recep",
              "pick_cool_then_place_in_recep"]

GRPO_RECIPE: dict[str, Any] = dict(
    env="PilotALFWorldSmall-v0",
    env_kwargs={"task_types": TASK_TYPES},
    output_dir="runs/grpo_demo",
    overwrite=True,  # an example re-run replaces its previous run (pass --resume to continue one instead)
    model="tiny",
    tiny_hidden=64,
    tiny_layers=2,
    tiny_heads=4,
    prompt_format="think_action",
    instruction="Answer with <think>...</think><action>...</action>.",
    task_reminder=True,
    history_window=0,
    max_new_tokens=24,
    max_turns=15,
    eval_max_turns=15,
    reward_mode="progress",
    success_reward=10.0,
    invalid_action_penalty=0.1,
    sft_episodes=800,
    sft_steps=1000,
    sft_lr=5e-3,
    sft_warmup_steps=50,
    sft_batch_size=16,
    iterations=40,
    tasks_per_iteration=8,
    group_size=8,
    num_envs=64,
    lr=2e-4,
    kl_coef=0.0,
    temperature=1.0,
    eval_temperature=0.4,
    eval_samples=3,
    micro_batch_tokens=6000,
    save_every=10,
    transcripts_every=10,
)

GRPO_ADVANTAGE = "gigpo"
"""The GRPO example's advantage estimator (not in ``GRPO_RECIPE``: the other examples' arms read the recipe)."""


def budgeted(trainer_cls: type, budget: int) -> type:
    """``trainer_cls`` that stops after the iteration whose rollouts reach ``budget`` env steps (all processes),
    so arms of a comparison train on (nearly) equal env steps: whole iterations, at most one over."""

    class Budgeted(trainer_cls):  # type: ignore[misc, valid-type]
        def on_step_end(self, batch: Any, metrics: dict[str, float]) -> None:
            super().on_step_end(batch, metrics)
            played = self.env_steps_total + metrics["env/steps"] * self.accelerator.num_processes  # incl. this one
            if played >= budget:
                self.config.iterations = self.step + 1
            else:  # the iterations the budget will take at this pace (progress lines and their ETA read it)
                per_iteration = played / (self.step + 1)
                self.config.iterations = self.step + 1 + max(1, math.ceil((budget - played) / per_iteration))

    Budgeted.__name__ = f"Budgeted{trainer_cls.__name__}"
    return Budgeted


def sft_rl_table(history: list[dict], rl: str = "GRPO") -> str:
    """SFT (the first evaluation) vs RL (the last) success per task type, from a trainer's ``eval_history``."""
    sft, last = history[0]["by_type"], history[-1]["by_type"]
    lines = [f"| task type | n | success after SFT | success after {rl} | progress SFT -> {rl} | steps SFT -> {rl} |",
             "|---|---|---|---|---|---|"]
    for t in [k for k in sft if k != "all"] + ["all"]:
        a, b = sft[t], last.get(t, sft[t])
        name = f"**{t}**" if t == "all" else t
        lines.append(f"| {name} | {int(a['n'])} | {a['success']:.3f} | {b['success']:.3f} | "
                     f"{a['progress']:.2f} -> {b['progress']:.2f} | {a['steps']:.1f} -> {b['steps']:.1f} |")
    return "\n".join(lines)


def write_marked(path: Path, start: str, end: str, text: str) -> None:
    """Replace what stands between the markers ``start`` and ``end`` of ``path`` with ``text`` (appended, with its
    markers, when they are missing), atomically."""
    docs.write_marked(path, start, end, text.strip() + "\n")


def plot_curves(runs: Sequence[tuple[str, Path, str, str]], keys: Sequence[str], path: Path,
                xlabel: str = "env steps") -> Path:
    """One panel per metric key against ``env/steps_total``, one line per run: ``(label, metrics.jsonl, colour, line
    style)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainers.core.logger import read_metrics

    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.4), squeeze=False)
    for label, metrics, colour, style in runs:
        recs = read_metrics(metrics)
        for key, ax in zip(keys, axes[0], strict=True):
            pts = [(r["env/steps_total"], r[key]) for r in recs if r.get(key) is not None and "env/steps_total" in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, color=colour, label=label, alpha=0.8)
    for key, ax in zip(keys, axes[0], strict=True):
        ax.set_title(f"training {key}", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
