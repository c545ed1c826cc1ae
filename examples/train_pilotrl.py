"""PilotRL on PilotALFWorldSmall-v0: SFT warm start, the three progressive stages, and GRPO at equal env steps.

1. SFT warm start in the AdaPlan format (the oracle expert; its first response writes the task's milestones
   as the global plan), then valid_unseen is evaluated;
2. PilotRL stage 1 (follow oracle plans), stage 2 (make plans; frozen stage-1 executor), stage 3 (joint),
   evaluating valid_unseen after each stage;
3. the GRPO baseline from the same SFT weights, same format, settings and env (agent plans), trained until
   it has used as many RL env steps as PilotRL, and evaluated when it passes PilotRL's env-step count at the
   end of each stage.

It prints (and writes to ``<out>/results.md``) valid_unseen success, overall and per task type, and the
plan score, after SFT, after each stage and for GRPO at the same env steps, and saves the learning curves
to ``<img>/pilotrl_curves.png``. Any Hugging Face model works (``--model Qwen/Qwen2.5-0.5B-Instruct`` or a
local path; nothing is downloaded), on CUDA when available.

    python examples/train_pilotrl.py --quick                       # smoke run (a few minutes on CPU)
    nice -n 10 python examples/train_pilotrl.py --img docs/img     # the measured run of docs/trainers/pilotrl.md
    python examples/train_pilotrl.py --planning ...                # the planning setting (below)

``--planning`` trains where plans decide outcomes (docs/planning.md): full-size rooms (PilotALFWorld-v0) with a
20-step cap, plans that name where to search (the SFT expert's first-turn plan is the located plan,
``sft_plan_source="located"``), and PilotRL's plan term the plan's completeness (``plan_reward="completeness"``:
the milestones the plan covers in an executable order and those the acting policy - in stage 2 the frozen
stage-1 executor - reached). GRPO gets the same env, format and settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
         "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")
SHORT = {"pick_and_place_simple": "pick", "look_at_obj_in_light": "look", "pick_clean_then_place_in_recep": "clean",
         "pick_heat_then_place_in_recep": "heat", "pick_cool_then_place_in_recep": "cool",
         "pick_two_obj_and_place": "pick two"}

COMMON: dict[str, Any] = dict(
    overwrite=True,  # an example re-run replaces its previous runs
    env="PilotALFWorldSmall-v0", model="tiny", tiny_hidden=64, tiny_layers=2, tiny_heads=4,
    prompt_format="adaplan", plan_mode="agent", instruction="Answer with <think>...</think><action>...</action>.",
    task_reminder=True, history_window=0, reward_mode="progress", success_reward=10.0, invalid_action_penalty=0.1,
    max_turns=15, max_new_tokens=112, temperature=1.0, lr=2e-4, kl_coef=0.0, clip_lo=0.2, clip_hi=0.2,
    tasks_per_iteration=4, group_size=8, num_envs=32, micro_batch_tokens=8192,
    eval_split="valid_unseen", eval_tasks=None, eval_samples=3, eval_temperature=0.4, eval_max_turns=15,
    transcripts_every=4, tensorboard=False, progress_bar=False, save_final_model=False,
)
"""Shared by PilotRL and the GRPO baseline: 32 episodes per iteration, no KL for either. Small-model settings:
no history in the prompt (the plan is the agent's memory; shorter prompts), the task repeated at the end,
a one-line instruction (the first turn keeps AdaPlan's plan instruction); 112 new tokens fit the longest
expert plan turn (82 tokens, two-object tasks) plus the overlong buffer."""
SFT: dict[str, Any] = dict(sft_episodes=800, sft_steps=1000, sft_lr=5e-3, sft_warmup_steps=50, sft_batch_size=16)
PILOTRL: dict[str, Any] = dict(outcome_weight=1.0, follow_weight=1.0, plan_weight=1.0, format_weight=1.0,
                               overlong_buffer=16, overlong_weight=1.0)
STAGES = (6, 12, 6)
"""Iterations per stage (the paper's epochs per stage are 1, 2, 1)."""
QUICK: dict[str, Any] = dict(tiny_hidden=32, tiny_corpus_episodes=60, sft_episodes=40, sft_steps=30, sft_warmup_steps=5,
                             tasks_per_iteration=2, group_size=4, num_envs=8, max_turns=6, eval_max_turns=6,
                             eval_tasks=12, eval_samples=1)
QUICK_STAGES = (1, 2, 1)
PLANNING: dict[str, Any] = dict(env="PilotALFWorld-v0", env_kwargs={"max_episode_steps": 20}, max_turns=20,
                                eval_max_turns=20, max_new_tokens=128, sft_plan_source="located")
"""``--planning``: the setting of docs/planning.md for both methods (a located plan is longer: 128 new tokens)."""
PLANNING_PILOTRL: dict[str, Any] = dict(plan_reward="completeness")
"""``--planning``: PilotRL's plan term is the plan's completeness."""


def _trainers(budget: int | None = None, marks: tuple[int, ...] = ()):
    """PilotRL keeping the SFT weights and env steps per stage; GRPO stopping at ``budget`` env steps and
    evaluating when it passes each of ``marks``."""
    from trainers.grpo import GRPOTrainer
    from trainers.pilotrl import PilotRLTrainer

    class PilotRun(PilotRLTrainer):
        def warm_start(self) -> dict[str, float]:
            out = super().warm_start()
            self.sft_state = {k: v.detach().to("cpu", copy=True) for k, v in self.policy.model.state_dict().items()}
            if out and self.is_main:  # reusable with --sft-model (ablations without redoing the SFT)
                self.policy.save(self.run_dir / "sft_model")
            return out

        def on_step_end(self, batch, metrics) -> None:
            super().on_step_end(batch, metrics)
            self.stage_env_steps = getattr(self, "stage_env_steps", {})
            if self.step + 1 in self.config.stage_bounds():  # the loop adds this iteration's steps after this hook
                played = self.env_steps_total + round(metrics["env/steps"])
                self.stage_env_steps[self.stage_at(self.step)] = played

    class BudgetedGRPO(GRPOTrainer):
        marked: list[tuple[int, dict]]

        def evaluate(self, step: int) -> dict[str, float]:
            if step == 0:  # the SFT weights were already evaluated in the PilotRL run
                return {}
            out = super().evaluate(step)
            steps = max(self.env_steps_total, getattr(self, "played", 0))  # incl. an iteration not yet added
            self.marked = [*getattr(self, "marked", []), (steps, self.eval_history[-1]["by_type"])]
            return out

        def on_step_end(self, batch, metrics) -> None:
            super().on_step_end(batch, metrics)
            done = len(getattr(self, "marked", []))
            played = self.played = self.env_steps_total + round(metrics["env/steps"])  # the loop adds them after
            if played >= budget:
                self.config.iterations = self.step + 1  # the loop evaluates the last iteration itself
            elif done < len(marks) - 1 and played >= marks[done]:
                metrics.update(self.evaluate(self.step + 1))

    return PilotRun, BudgetedGRPO


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from trainers.grpo import GRPOConfig
    from trainers.pilotrl import PilotRLConfig

    out = Path(args.out)
    common = {**COMMON, **SFT, **(PLANNING if args.planning else {}), **(QUICK if args.quick else {}),
              "model": args.model, "seed": args.seed, **json.loads(args.set)}
    if args.sft_model:
        common.update(model=args.sft_model, sft_episodes=0)
    if args.model != "tiny":
        common["micro_batch_tokens"] = 4096
    stages = tuple(args.stages) if args.stages else (QUICK_STAGES if args.quick else STAGES)
    PilotRun, _ = _trainers()
    pilotrl = {**PILOTRL, **(PLANNING_PILOTRL if args.planning else {})}
    pcfg = PilotRLConfig(**common, **pilotrl, stage1_iterations=stages[0], stage2_iterations=stages[1],
                         stage3_iterations=stages[2], output_dir=str(out / "pilotrl"))
    t0, c0 = time.perf_counter(), time.process_time()
    pilot = PilotRun(pcfg)
    pilot.train()
    pilot_wall, pilot_cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = pilot.stage_env_steps
    marks = tuple(steps[k] for k in sorted(steps))
    _, BudgetedGRPO = _trainers(budget=pilot.env_steps_total, marks=marks)
    gkw = {k: v for k, v in common.items() if k != "sft_plan_source"}  # GRPO starts from PilotRL's SFT weights
    gcfg = GRPOConfig(**{**gkw, "sft_episodes": 0, "iterations": 1_000_000, "output_dir": str(out / "grpo")})
    t0, c0 = time.perf_counter(), time.process_time()
    grpo = BudgetedGRPO(gcfg)
    grpo.policy.model.load_state_dict(pilot.sft_state)  # the very same SFT weights
    grpo.on_warm_start_end()
    grpo.train()
    grpo_wall, grpo_cpu = time.perf_counter() - t0, time.process_time() - c0
    reports = pilot.stage_reports()
    return {
        "config": {"pilotrl": pcfg.__dict__, "grpo": gcfg.__dict__}, "stages": stages,
        "pilotrl": {"reports": reports, "env_steps": {"sft": 0, **{f"stage{k}": v for k, v in steps.items()}},
                    "env_steps_total": pilot.env_steps_total, "wall_s": pilot_wall, "cpu_s": pilot_cpu,
                    "iterations": pilot.step},
        "grpo": {"marked": grpo.marked, "env_steps_total": grpo.env_steps_total, "wall_s": grpo_wall,
                 "cpu_s": grpo_cpu, "iterations": grpo.step},
    }


# ------------------------------------------------------------------------------------------------ report
def _row(name: str, steps: int, by: dict[str, dict[str, float]]) -> str:
    cells = [f"{100 * by[t]['success']:.1f}" if t in by else "-" for t in TYPES]
    a = by["all"]
    return (f"| {name} | {steps:,} | **{100 * a['success']:.1f}** | " + " | ".join(cells)
            + f" | {a['plan_score']:.3f} | {a['progress']:.3f} |")


def table(res: dict[str, Any]) -> str:
    """Markdown: valid_unseen success (%) overall and per type, plan score and progress, per checkpoint."""
    head = ("| after | RL env steps | success | " + " | ".join(SHORT[t] for t in TYPES)
            + " | plan score | progress |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    p, g = res["pilotrl"], res["grpo"]
    names = {"sft": "SFT (AdaPlan)", "stage1": "PilotRL stage 1 (follow plans)",
             "stage2": "PilotRL stage 2 (make plans)", "stage3": "PilotRL stage 3 (joint)"}
    marked = list(g["marked"])
    for key, by in p["reports"].items():
        lines.append(_row(names[key], p["env_steps"].get(key, 0), by))
        if key != "sft" and marked:
            steps, gby = marked.pop(0)
            lines.append(_row("GRPO, same env steps", steps, gby))
    lines += ["", "| run | RL iterations | RL env steps | wall time | CPU time |", "|---|---|---|---|---|",
              f"| PilotRL (SFT + 3 stages + {len(p['reports'])} evals) | {p['iterations']} | "
              f"{p['env_steps_total']:,} | {p['wall_s'] / 60:.1f} min | {p['cpu_s'] / 60:.1f} min |",
              f"| GRPO ({len(g['marked'])} evals) | {g['iterations']} | {g['env_steps_total']:,} | "
              f"{g['wall_s'] / 60:.1f} min | {g['cpu_s'] / 60:.1f} min |"]
    return "\n".join(lines)


def plot(res: dict[str, Any], out: Path, img: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainers.core.logger import read_metrics

    p, g = res["pilotrl"], res["grpo"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    xs = [p["env_steps"].get(k, 0) for k in p["reports"]]
    axes[0].plot(xs, [100 * b["all"]["success"] for b in p["reports"].values()], "o-", label="PilotRL")
    sft = p["reports"].get("sft", {}).get("all", {}).get("success", 0.0)
    axes[0].plot([0] + [s for s, _ in g["marked"]], [100 * sft] + [100 * b["all"]["success"] for _, b in g["marked"]],
                 "s--", label="GRPO")
    axes[0].set_title("valid_unseen success (%)", fontsize=10)
    logs = {"PilotRL": read_metrics(out / "pilotrl" / "metrics.jsonl"), "GRPO": read_metrics(out / "grpo" / "metrics.jsonl")}
    for name, recs in logs.items():
        recs = [r for r in recs if r.get("env/progress") is not None]
        axes[1].plot([r["env/steps_total"] for r in recs], [r["env/progress"] for r in recs], label=name)
    axes[1].set_title("training progress (fraction of milestones)", fontsize=10)
    recs = [r for r in logs["PilotRL"] if r.get("pilotrl/stage") is not None]
    for key, label in (("reward/follow", "plan following (stage 1)"), ("reward/plan", "plan score (stages 2-3)"),
                       ("reward/format", "AdaPlan format")):
        pts = [(r["env/steps_total"], r[key]) for r in recs if r.get(key) is not None]
        if pts:
            axes[2].plot(*zip(*pts, strict=True), "o-", markersize=3, label=label)
    axes[2].set_title("PilotRL reward terms (training)", fontsize=10)
    if res.get("planning"):
        axes[2].set_title("PilotRL reward terms (training; plan = completeness)", fontsize=10)
    for ax in axes:
        for s in list(p["env_steps"].values())[1:-1]:
            ax.axvline(s, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("RL env steps", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    img.mkdir(parents=True, exist_ok=True)
    path = img / ("pilotrl_planning_curves.png" if res.get("planning") else "pilotrl_curves.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small model, few tasks, short stages")
    ap.add_argument("--model", default="tiny", help="'tiny' (offline) or a Hugging Face model id / local path")
    ap.add_argument("--stages", type=int, nargs=3, default=None, metavar="N",
                    help=f"iterations of stages 1, 2, 3 (default {STAGES}, --quick {QUICK_STAGES})")
    ap.add_argument("--sft-model", default=None,
                    help="start both methods from this saved SFT model (<out>/pilotrl/sft_model) instead of SFT")
    ap.add_argument("--planning", action="store_true",
                    help="full-size rooms, 20-step cap, located plans, PilotRL's plan term = completeness")
    ap.add_argument("--set", default="{}", help="JSON of config overrides for both methods (e.g. eval_samples)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default="runs/pilotrl_example")
    ap.add_argument("--img", default=None, help="folder of the plot (default: <out>)")
    args = ap.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run(args)
    res["planning"] = args.planning
    res["wall_s"], res["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out = Path(args.out)
    md = table(res) + (f"\n\nTotal: {res['wall_s'] / 60:.1f} min wall time, {res['cpu_s'] / 60:.1f} min CPU time "
                       f"({args.threads} torch thread(s)).\n")
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "results.md").write_text(md)
    print(md)
    print("wrote", plot(res, out, Path(args.img) if args.img else out))


if __name__ == "__main__":
    main()
