"""GRPO vs GRPO+EMPG on small-scene PilotALFWorld: the same recipe, the same SFT weights, equal env steps.

    python examples/train_empg.py --seeds 0,1,2 --parallel 2     # the measured run of docs/trainers/empg.md (~35 min)
    python examples/train_empg.py --quick                        # smoke run (~2 min)
    python examples/train_empg.py --report --write-docs          # tables + plots from the runs already in --out

Both arms are the GRPO example's recipe (``GRPO_RECIPE`` of examples/recipes.py) with the episode-level GRPO
advantage: the ``grpo`` arm as it is, the ``empg`` arm with that advantage modulated by entropy (EMPG, k = k' = 1,
zeta = 0.1). For a seed both arms build the same tiny model and run the same SFT warm start (so they start from the
same weights: their step-0 evaluations are identical), then train until the same env-step budget (whole
iterations). Each (seed, arm) runs in its own worker process; valid_unseen is evaluated after SFT and at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _jobs import run_jobs
from recipes import GRPO_RECIPE, budgeted, plot_curves, write_marked

ARMS = ("grpo", "empg")
QUICK = dict(sft_episodes=40, sft_steps=40, sft_warmup_steps=5, max_turns=6, eval_max_turns=6, eval_tasks=12,
             eval_samples=1, num_envs=16, tiny_corpus_episodes=60, tasks_per_iteration=2)
MARK_START, MARK_END = "<!-- empg:start -->", "<!-- empg:end -->"


def default_budget(quick: bool) -> int:
    """The GRPO example's most env steps: iterations x episodes per iteration x turn cap."""
    r = GRPO_RECIPE
    return 300 if quick else r["iterations"] * r["tasks_per_iteration"] * r["group_size"] * r["max_turns"]


def run_one(arm: str, seed: int, out: Path, budget: int, quick: bool) -> dict:
    """Train one arm of one seed until ``budget`` env steps; return its summary."""
    import torch

    torch.set_num_threads(1)
    from trainers.empg import EMPGConfig, EMPGTrainer
    from trainers.grpo import GRPOConfig, GRPOTrainer

    config_cls, trainer_cls = {"grpo": (GRPOConfig, GRPOTrainer), "empg": (EMPGConfig, EMPGTrainer)}[arm]
    kwargs = {**GRPO_RECIPE, **(QUICK if quick else {}), "seed": seed, "output_dir": str(out / f"seed{seed}" / arm),
              "iterations": 100_000, "save_every": 0, "tensorboard": False, "progress_bar": False,
              "save_final_model": False, "advantage": "grpo" if arm == "grpo" else "empg"}
    t0 = time.perf_counter()
    trainer = budgeted(trainer_cls, budget)(config_cls(**kwargs))
    last = trainer.train()
    return {"arm": arm, "seed": seed, "config": kwargs, "wall_s": time.perf_counter() - t0,
            "iterations": trainer.step, "env_steps": trainer.env_steps_total, "eval": trainer.eval_history,
            "last": {k: v for k, v in last.items() if isinstance(v, float)}}


# ------------------------------------------------------------------------------------------ reporting
def load(out: Path) -> dict[int, dict[str, dict]]:
    """{seed: {arm: result}} from the ``result.json`` files under ``out``."""
    found: dict[int, dict[str, dict]] = {}
    for path in sorted(out.glob("seed*/*/result.json")):
        r = json.loads(path.read_text())
        found.setdefault(int(r["seed"]), {})[r["arm"]] = r
    return found


def table(results: dict[int, dict[str, dict]]) -> str:
    """Markdown: success after SFT and after RL per seed and arm, env steps, and the means."""
    lines = ["| seed | after SFT | GRPO | GRPO+EMPG | env steps (GRPO / EMPG) |", "|---|---|---|---|---|"]
    sums = [0.0, 0.0, 0.0]
    seeds = [s for s in sorted(results) if set(ARMS) <= set(results[s])]
    for s in seeds:
        g, e = results[s]["grpo"], results[s]["empg"]
        sft = g["eval"][0]["by_type"]["all"]["success"]
        assert e["eval"][0]["by_type"]["all"]["success"] == sft, "both arms start from the same SFT weights"
        a, b = g["eval"][-1]["by_type"]["all"]["success"], e["eval"][-1]["by_type"]["all"]["success"]
        for i, x in enumerate((sft, a, b)):
            sums[i] += x
        lines.append(f"| {s} | {100 * sft:.1f} | {100 * a:.1f} ({100 * (a - sft):+.1f}) | "
                     f"{100 * b:.1f} ({100 * (b - sft):+.1f}) | {g['env_steps']:,} / {e['env_steps']:,} |")
    if len(seeds) > 1:
        m = [x / len(seeds) for x in sums]
        lines.append(f"| mean | {100 * m[0]:.1f} | {100 * m[1]:.1f} ({100 * (m[1] - m[0]):+.1f}) | "
                     f"{100 * m[2]:.1f} ({100 * (m[2] - m[0]):+.1f}) | |")
    return "\n".join(lines)


def plot(results: dict[int, dict[str, dict]], out: Path, path: Path) -> Path:
    """Training success, mean token entropy and EMPG's g range against env steps, per seed and arm."""
    runs = [(f"{arm} seed {seed}", out / f"seed{seed}" / arm / "metrics.jsonl", f"C{k}", style)
            for k, seed in enumerate(sorted(results)) for arm, style in zip(ARMS, ("-", "--"), strict=True)]
    return plot_curves(runs, ("env/success_rate", "policy/entropy", "adv/g_max"), path)


def write_docs(table_md: str, root: Path) -> None:
    """Put the table and the plot between the EMPG markers of docs/results.md and docs/trainers/empg.md."""
    for page, img in ((root / "docs" / "results.md", "img"), (root / "docs" / "trainers" / "empg.md", "../img")):
        write_marked(page, MARK_START, MARK_END, f"{table_md}\n\n![GRPO vs GRPO+EMPG]({img}/empg_curves.png)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny budget, a few eval tasks")
    p.add_argument("--env-steps", type=int, default=None, help="env-step budget per run (default: the GRPO example's most)")
    p.add_argument("--parallel", type=int, default=1, help="runs at the same time (one process each)")
    p.add_argument("--out", default="runs/empg_example")
    p.add_argument("--report", action="store_true", help="only report the runs already in --out")
    p.add_argument("--write-docs", action="store_true", help="update docs/results.md, docs/trainers/empg.md, the plot")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out)
    budget = a.env_steps or default_budget(a.quick)
    if a.worker:  # "seed<N>/<arm>"
        seed, arm = a.worker.split("/")
        res = run_one(arm, int(seed.removeprefix("seed")), out, budget, a.quick)
        (out / a.worker / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    if not a.report:
        jobs = [f"seed{int(s)}/{arm}" for s in a.seeds.split(",") if s for arm in ARMS]
        base = [sys.executable, __file__, "--out", str(out), "--env-steps", str(budget), *(["--quick"] if a.quick else [])]
        run_jobs(jobs, lambda job: [*base, "--worker", job], out, a.parallel)
    results = load(out)
    text = table(results)
    print(text)
    root = Path(__file__).resolve().parents[1]
    img = plot(results, out, (root / "docs" / "img" if a.write_docs else out) / "empg_curves.png")
    print(f"plot: {img}")
    if a.write_docs:
        write_docs(text, root)


if __name__ == "__main__":
    main()
