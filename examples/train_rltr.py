"""RLTR on the planning setting: the tiny model as planner, the plan follower as executor, PilotALFWorld-v0 with a
step cap of 20 (docs/planning.md). SFT on the oracle's plans, then RLTR (GRPO on completeness, no outcome reward).

    python examples/train_rltr.py --seeds 0,1,2 --parallel 2     # the measured runs of docs/trainers/rltr.md
    python examples/train_rltr.py --quick                        # smoke run (~1 min)
    python examples/train_rltr.py --report --write-docs          # table + plot from the runs already in --out

For each seed: the tiny model, SFT on the oracle planner's answers (the milestones, each find step naming where
the object is), valid_unseen evaluated after SFT and after RL (every task once, the planner's first plan played out
by the follower): the executor's success with the planner's plans, the mean return (completeness minus the format
term) and the env's plan score. The reference planners of docs/planning.md (oracle, prior, milestones only) bound
what a planner can reach here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _jobs import run_jobs
from recipes import plot_curves, write_marked

RECIPE: dict[str, Any] = dict(
    env="PilotALFWorld-v0",
    model="tiny",
    tiny_hidden=128,
    tiny_layers=2,
    tiny_heads=4,
    instruction="Answer with <plan>Step 1: ... Step 2: ...</plan>, naming the places to check.",
    step_cap=20,
    max_new_tokens=160,
    sft_episodes=1500,
    sft_steps=600,
    sft_batch_size=16,
    sft_lr=5e-3,
    sft_warmup_steps=30,
    iterations=40,
    tasks_per_iteration=8,
    group_size=8,
    num_envs=64,
    lr=2e-4,
    kl_coef=0.0,
    temperature=1.0,
    eval_temperature=0.4,
    eval_tasks=None,
    save_every=0,
    transcripts_every=10,
    tensorboard=False,
    progress_bar=False,
    save_final_model=False,
    overwrite=True,
)
QUICK = dict(sft_episodes=40, sft_steps=20, iterations=2, tasks_per_iteration=2, group_size=4, num_envs=8,
             eval_tasks=8, tiny_corpus_episodes=60, tiny_hidden=32)
MARK_START, MARK_END = "<!-- rltr:start -->", "<!-- rltr:end -->"


def run_one(seed: int, out: Path, quick: bool, overrides: dict[str, Any]) -> dict:
    import torch

    torch.set_num_threads(1)
    from trainers.rltr import RLTRConfig, RLTRTrainer

    kwargs = {**RECIPE, **(QUICK if quick else {}), **overrides, "seed": seed, "output_dir": str(out / f"seed{seed}")}
    t0 = time.perf_counter()
    trainer = RLTRTrainer(RLTRConfig(**kwargs))
    trainer.train()
    return {"seed": seed, "config": kwargs, "wall_s": time.perf_counter() - t0, "iterations": trainer.step,
            "env_steps": trainer.env_steps_total, "eval": trainer.eval_history}


def load(out: Path) -> dict[int, dict]:
    return {int(r["seed"]): r for r in (json.loads(p.read_text()) for p in sorted(out.glob("seed*/result.json")))}


def table(results: dict[int, dict]) -> str:
    """Per seed: after SFT -> after RLTR, success (%), return (completeness - format term), plan score."""
    lines = ["| seed | success: SFT -> RLTR | return: SFT -> RLTR | plan score: SFT -> RLTR | training episodes | wall |",
             "|---|---|---|---|---|---|"]
    sums = [0.0] * 6
    for s in sorted(results):
        r = results[s]
        a, b = r["eval"][0]["by_type"]["all"], r["eval"][-1]["by_type"]["all"]
        vals = (100 * a["success"], 100 * b["success"], a["return"], b["return"], a["plan_score"], b["plan_score"])
        sums = [x + y for x, y in zip(sums, vals, strict=True)]
        lines.append(f"| {s} | {vals[0]:.1f} -> {vals[1]:.1f} ({vals[1] - vals[0]:+.1f}) | {vals[2]:.3f} -> {vals[3]:.3f} | "
                     f"{vals[4]:.3f} -> {vals[5]:.3f} | {r['env_steps']:,} | {r['wall_s'] / 60:.0f} min |")
    if len(results) > 1:
        m = [x / len(results) for x in sums]
        lines.append(f"| mean | {m[0]:.1f} -> {m[1]:.1f} ({m[1] - m[0]:+.1f}) | {m[2]:.3f} -> {m[3]:.3f} | "
                     f"{m[4]:.3f} -> {m[5]:.3f} | | |")
    return "\n".join(lines)


def plot(results: dict[int, dict], out: Path, path: Path) -> Path:
    """Training return (completeness - format term) and success against env steps, per seed."""
    runs = [(f"seed {seed}", out / f"seed{seed}" / "metrics.jsonl", f"C{k}", "-") for k, seed in enumerate(sorted(results))]
    return plot_curves(runs, ("env/return", "env/success_rate"), path, xlabel="training episodes (planner turns)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parallel", type=int, default=1, help="runs at the same time (one process each)")
    p.add_argument("--out", default="runs/rltr_example")
    p.add_argument("--set", default="{}", help="JSON of RLTRConfig overrides for every run")
    p.add_argument("--report", action="store_true", help="only report the runs already in --out")
    p.add_argument("--write-docs", action="store_true", help="update docs/trainers/rltr.md and its plot")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out)
    if a.worker:
        seed = int(a.worker.removeprefix("seed"))
        res = run_one(seed, out, a.quick, json.loads(a.set))
        (out / a.worker / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    if not a.report:
        jobs = [f"seed{int(s)}" for s in a.seeds.split(",") if s]
        base = [sys.executable, __file__, "--out", str(out), "--set", a.set, *(["--quick"] if a.quick else [])]
        run_jobs(jobs, lambda job: [*base, "--worker", job], out, a.parallel)
    results = load(out)
    text = table(results)
    print(text)
    root = Path(__file__).resolve().parents[1]
    img = plot(results, out, (root / "docs" / "img" if a.write_docs else out) / "rltr_curves.png")
    print(f"plot: {img}")
    if a.write_docs:
        write_marked(root / "docs" / "trainers" / "rltr.md", MARK_START, MARK_END,
                     f"{text}\n\n![RLTR learning curves](../img/rltr_curves.png)")


if __name__ == "__main__":
    main()
