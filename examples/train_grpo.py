"""SFT warm start, then GRPO with progress rewards, on small-scene PilotALFWorld, with the offline tiny model on CPU.

    python examples/train_grpo.py                          # ~10 minutes on one idle CPU core
    python examples/train_grpo.py --iterations 5           # any config field can be overridden
    python examples/train_grpo.py --advantage grpo         # episode-level GRPO advantages only (does not learn here)
    python examples/train_grpo.py --write-docs             # also update the table in docs/results.md and the plot

It evaluates on valid_unseen (held-out rooms) right after SFT and again after GRPO, and prints success per task
type. The GRPO trainer runs with GiGPO's advantage (``GRPO_ADVANTAGE``): the episode-level group advantage plus a
step-level one between turns of the group that acted in the same env state. With the episode-level advantage
alone, one number spread over 15 turns that winning and losing rollouts largely share, this tiny policy does not
improve (docs/trainers/grpo.md, "Measured"). ``GRPO_RECIPE`` (examples/recipes.py) is everything else; the HiPER
and EPO examples read it, so their GRPO arms are plain (episode-level) GRPO.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from recipes import GRPO_ADVANTAGE, GRPO_RECIPE, sft_rl_table, write_marked

from trainers.core.cli import config_from_args
from trainers.grpo import GRPOConfig, GRPOTrainer

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- grpo:start -->", "<!-- grpo:end -->"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--write-docs", action="store_true")
    known, rest = parser.parse_known_args(argv)
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and kind to a shared machine
    config = config_from_args(GRPOConfig, rest, prog="examples/train_grpo.py",
                              defaults={**GRPO_RECIPE, "advantage": GRPO_ADVANTAGE})
    start = time.perf_counter()
    trainer = GRPOTrainer(config)
    last = trainer.train()
    wall = time.perf_counter() - start
    out = Path(config.output_dir)
    summary = {"wall_s": wall, "env_steps": last.get("env/steps_total"), "iterations": config.iterations,
               "eval": trainer.eval_history, "config": config.__dict__}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    table = sft_rl_table(trainer.eval_history)
    print(table)
    print(f"wall time {wall / 60:.1f} min, {int(summary['env_steps'] or 0)} env steps (training rollouts)")
    if known.write_docs:
        img = ROOT / "docs" / "img" / "grpo_learning_curves.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "learning_curves.png", img)
        write_marked(ROOT / "docs" / "results.md", MARK_START, MARK_END,
                     f"{table}\n\n![GRPO learning curves](img/grpo_learning_curves.png)")
    return summary


if __name__ == "__main__":
    main()
