"""RLTR on the planning setting: the tiny model as planner, the plan follower as executor, PilotALFWorld-v0 with a
step cap of 20 (docs/planning.md); and RLTR against end-to-end training from the same SFT weights.

    python examples/train_rltr.py --seeds 0,1,2                     # RLTR alone (the first table of docs/trainers/rltr.md)
    python examples/train_rltr.py --compare --seeds 0,1,2           # RLTR vs end-to-end GRPO, equal world steps
    python examples/train_rltr.py --compare --quick                 # smoke run of the comparison (~2 min)
    python examples/train_rltr.py [--compare] --report --write-docs # tables + plots from the runs already in --out

**RLTR alone**: for each seed the tiny model, SFT on the oracle planner's answers (the milestones, each find step
naming where the object is), valid_unseen evaluated after SFT and after RL (every task once, the planner's first
plan played out by the follower): the executor's success with the planner's plans, the mean return (completeness
minus the format term) and the env's plan score.

**The comparison** (``--compare``): per seed one shared SFT checkpoint, trained on both the oracle planner's answers
(``planner`` format, on the planner env) and the expert's AdaPlan episodes on PilotALFWorld-v0 at the same 20-step
cap, whose first-turn plan is the same located plan (``plan_source="located"`` of ``trainers.core.sft``), so both
arms start from one model and one plan language. Then, from those weights, until the same number of world steps:

* ``rltr``: RLTR (the planner alone, completeness reward, the follower executes);
* ``e2e``: GRPO in the AdaPlan format, outcome reward (1 on success), the model writing the plan *and* acting.

World steps are the wrapped env's steps in both arms: an AdaPlan turn is one; an RLTR planner turn is one plus the
follower's steps inside it (``trainers.rltr.trainer``). On valid_unseen (all tasks, temperature 0.4), after SFT
and after each arm: **planning** - the model's first plan (its planner answer, or the ``<plan>`` of its first
AdaPlan turn) played out by the follower on the planner env: completeness, plan score and the follower's success;
**final success** - the RLTR system (its plan, the follower executing) and the end-to-end model acting itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _jobs import run_jobs
from recipes import budgeted, plot_curves, write_marked

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

# ------------------------------------------------------------------------------------------- the comparison
E2E: dict[str, Any] = dict(
    env="PilotALFWorld-v0", env_kwargs={"max_episode_steps": 20}, prompt_format="adaplan", plan_mode="agent",
    instruction="Answer with <think>...</think><action>...</action>.", task_reminder=True, history_window=0,
    max_turns=20, eval_max_turns=20, max_new_tokens=160, reward_mode="sparse", success_reward=1.0,
    invalid_action_penalty=0.0,
)
"""The end-to-end arm: GRPO, AdaPlan (its first turn writes the plan, every turn thinks and acts), the world's
outcome as reward, the same env and 20-step cap as the planner env; the rest of ``RECIPE`` (model, SFT, lr, groups)."""
SFT_SHARE = 0.3
"""Fraction of the shared SFT's expert episodes played in the AdaPlan format (the rest as the planner)."""
COMPARE_SFT = dict(sft_steps=500, num_envs=134)
"""The shared SFT's steps (sized for the CPU hour: its AdaPlan turns have long prompts), and every valid_unseen task
in one evaluation wave."""
PLANNER_REPEAT = 3
"""Each planner answer appears this many times in the shared SFT data (about half of the samples then: an AdaPlan
episode gives one sample per turn, a planner episode one)."""
COMPARE_BUDGET = 4500
"""World steps per arm (about 5 RLTR iterations of 64 plans, 4 GRPO iterations of 64 episodes): sized so that
three seeds fit in an hour of one shared CPU core."""
QUICK_BUDGET = 150
COMPARE_MARK = "rltr-e2e"


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


def _configs(seed: int, out: Path, quick: bool, model: str | None = None) -> tuple[Any, Any]:
    """(RLTR config, end-to-end GRPO config) of one seed, run directories ``out/rltr`` and ``out/e2e``; ``model``: the
    shared SFT checkpoint (then no SFT)."""
    from trainers.grpo import GRPOConfig
    from trainers.rltr import RLTRConfig

    base = {**RECIPE, **COMPARE_SFT, **(QUICK if quick else {}), "seed": seed, "eval_split": None,
            "iterations": 100_000}
    if model is not None:
        base.update(model=model, sft_episodes=0)
    rltr = RLTRConfig(**{**base, "output_dir": str(out / "rltr")})
    e2e_keys = {k: v for k, v in base.items() if k != "step_cap"}
    e2e = GRPOConfig(**{**e2e_keys, **E2E, "eval_split": "valid_unseen", "output_dir": str(out / "e2e")})
    return rltr, e2e


def planning_eval(trainer: Any, seed: int, *, stop_at_plan: bool) -> dict[str, float]:
    """The model's first plan on every valid_unseen task (``eval_tasks`` of them), played out by the follower on
    the planner env (format weight 0, so an episode's return is the plan's completeness): mean completeness, plan
    score and the follower's success. ``stop_at_plan``: generation stops at ``</plan>`` (an AdaPlan first turn's
    reasoning and action are not needed for the plan)."""
    from dataclasses import replace

    import gymnasium as gym

    from trainers.core.evaluation import evaluate_policy, split_tasks

    cfg = trainer.config

    def make() -> gym.Env:
        return gym.make("PilotPlanner-v0", env_id="PilotALFWorld-v0", executor="follower", completeness_weight=1.0,
                        format_weight=0.0, step_cap=20)

    probe = make()
    try:
        tasks = split_tasks(probe, "valid_unseen", cfg.eval_tasks, seed=seed, samples=1)
    finally:
        probe.close()
    envs = [make() for _ in range(max(1, min(cfg.num_envs, len(tasks))))]
    agent = replace(trainer.agent, max_turns=1, **({"stop_strings": ("</plan>",)} if stop_at_plan else {}))
    try:
        report, _ = evaluate_policy(trainer.policy, envs, agent, tasks, temperature=cfg.eval_temperature,
                                    seed=seed + 12345, env_id="PilotPlanner-v0", split="valid_unseen")
    finally:
        for e in envs:
            e.close()
    a = report.by_type()["all"]
    return {"completeness": a["return"], "plan_score": a["plan_score"], "success": a["success"], "n": a["n"]}


def shared_sft(seed: int, out: Path, quick: bool) -> dict:
    """One tiny model per seed, SFT on planner answers and AdaPlan episodes together; saved to ``out/sft_model``."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from trainers.core.rollout import TaskSpec
    from trainers.core.sft import expert_samples, sft_train
    from trainers.grpo import GRPOTrainer
    from trainers.rltr import RLTRTrainer

    t0 = time.perf_counter()
    rcfg, ecfg = _configs(seed, out / "sft", quick)
    rltr = RLTRTrainer(rcfg)  # builds the tiny model (its tokenizer knows every registered format's words)
    e2e = GRPOTrainer(ecfg, policy=rltr.policy)  # the same model, the AdaPlan agent's prompts
    n = rcfg.sft_episodes
    n_ada = round(SFT_SHARE * n)
    opts = {"split": "train"}
    tasks = [TaskSpec(200_000 + seed * 100_003 + i, opts) for i in range(n)]
    samples = []
    for trainer, part, kw, repeat in ((rltr, tasks[n_ada:], {"think": "default", "max_turns": 1}, PLANNER_REPEAT),
                                      (e2e, tasks[:n_ada], {"think": "subgoal", "max_turns": ecfg.max_turns,
                                                            "plan_source": "located"}, 1)):
        env = trainer.env_fn()
        try:
            samples += expert_samples(env, part, trainer.build_renderer(trainer.policy), **kw) * repeat
        finally:
            env.close()
    kinds = {"planner": sum(s.response_text.startswith("<plan>") and "<action>" not in s.response_text for s in samples)}
    losses = sft_train(rltr.policy, samples, steps=rcfg.sft_steps, batch_size=rcfg.sft_batch_size, lr=rcfg.sft_lr,
                       micro_batch_tokens=rcfg.micro_batch_tokens, seed=seed * 7,
                       warmup_steps=rcfg.sft_warmup_steps, max_grad_norm=rcfg.max_grad_norm,
                       on_step=lambda i, loss: print(f"sft step {i + 1}/{rcfg.sft_steps}, loss {loss:.3f}", flush=True)
                       if (i + 1) % 25 == 0 else None)
    path = rltr.policy.save(out / "sft_model")
    return {"seed": seed, "arm": "sft", "samples": len(samples), "planner_samples": kinds["planner"],
            "adaplan_episodes": n_ada, "planner_episodes": n - n_ada, "loss_first": losses[0],
            "loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])), "model": str(path),
            "wall_s": time.perf_counter() - t0}


def run_arm(arm: str, seed: int, out: Path, budget: int, quick: bool) -> dict:
    """Train one arm of one seed from the seed's shared SFT checkpoint until ``budget`` world steps; evaluate
    after SFT and at the end."""
    import torch

    torch.set_num_threads(1)
    from trainers.grpo import GRPOTrainer
    from trainers.rltr import RLTRTrainer

    t0 = time.perf_counter()
    sft = json.loads((out / "sft" / "result.json").read_text())
    rcfg, ecfg = _configs(seed, out, quick, model=sft["model"])
    cls, cfg = {"rltr": (RLTRTrainer, rcfg), "e2e": (GRPOTrainer, ecfg)}[arm]
    trainer = budgeted(cls, budget)(cfg)
    evals: dict[str, Any] = {"sft": {"planning": planning_eval(trainer, seed, stop_at_plan=arm == "e2e")}}
    print(f"{arm} seed {seed} after SFT: planning {evals['sft']['planning']}", flush=True)
    trainer.train()  # e2e: evaluates the acting agent after SFT (step 0) and at the end
    evals["rl"] = {"planning": planning_eval(trainer, seed, stop_at_plan=arm == "e2e")}
    if arm == "e2e":
        evals["sft"]["acting"] = trainer.eval_history[0]["by_type"]["all"]
        evals["rl"]["acting"] = trainer.eval_history[-1]["by_type"]["all"]
    print(f"{arm} seed {seed} after RL: {evals['rl']}", flush=True)
    return {"seed": seed, "arm": arm, "evals": evals, "iterations": trainer.step,
            "env_steps": trainer.env_steps_total, "wall_s": time.perf_counter() - t0}


def load_compare(out: Path) -> dict[int, dict[str, dict]]:
    found: dict[int, dict[str, dict]] = {}
    for path in sorted(out.glob("seed*/*/result.json")):
        r = json.loads(path.read_text())
        found.setdefault(int(r["seed"]), {})[r["arm"]] = r
    return {s: r for s, r in found.items() if {"sft", "rltr", "e2e"} <= set(r)}


def compare_rows(res: dict[str, dict]) -> dict[str, tuple[float, ...]]:
    """One seed's numbers: per model (SFT, RLTR, end-to-end) completeness, plan score, follower success (%) of its
    plans, and its final success (%) as a system (RLTR: its plans, the follower executing; end-to-end: acting)."""
    r, e = res["rltr"]["evals"], res["e2e"]["evals"]

    def plan(p: dict) -> tuple[float, float, float]:
        return p["completeness"], p["plan_score"], 100 * p["success"]

    return {
        "sft_planner": (*plan(r["sft"]["planning"]), 100 * r["sft"]["planning"]["success"]),
        "sft_adaplan": (*plan(e["sft"]["planning"]), 100 * e["sft"]["acting"]["success"]),
        "rltr": (*plan(r["rl"]["planning"]), 100 * r["rl"]["planning"]["success"]),
        "e2e": (*plan(e["rl"]["planning"]), 100 * e["rl"]["acting"]["success"]),
    }


NAMES = {"sft_planner": "SFT, as planner (follower acts)", "sft_adaplan": "SFT, AdaPlan (acts itself)",
         "rltr": "**RLTR** (follower acts)", "e2e": "**end-to-end GRPO** (acts itself)"}


def compare_table(results: dict[int, dict[str, dict]]) -> str:
    lines = ["| seed | model | completeness | plan score | follower success with its plans | final success | world steps | wall |",
             "|---|---|---|---|---|---|---|---|"]
    sums: dict[str, list[float]] = {}
    for s in sorted(results):
        rows = compare_rows(results[s])
        for key, vals in rows.items():
            sums[key] = [a + b for a, b in zip(sums.get(key, [0.0] * 4), vals, strict=True)]
            run = results[s].get(key)
            steps = f"{run['env_steps']:,}" if run else "0"
            wall = f"{run['wall_s'] / 60:.0f} min" if run else f"{results[s]['sft']['wall_s'] / 60:.0f} min (SFT)"
            lines.append(f"| {s} | {NAMES[key]} | {vals[0]:.3f} | {vals[1]:.3f} | {vals[2]:.1f} | {vals[3]:.1f} | "
                         f"{steps} | {wall} |")
    if len(results) > 1:
        for key, tot in sums.items():
            m = [x / len(results) for x in tot]
            lines.append(f"| mean | {NAMES[key]} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.1f} | {m[3]:.1f} | | |")
    return "\n".join(lines)


def compare_plot(results: dict[int, dict[str, dict]], out: Path, path: Path) -> Path:
    """Training success and return of both arms against world steps, per seed."""
    runs = [(f"{arm} seed {s}", out / f"seed{s}" / arm / "metrics.jsonl", f"C{k}", style)
            for k, s in enumerate(sorted(results)) for arm, style in (("rltr", "-"), ("e2e", "--"))]
    return plot_curves(runs, ("env/success_rate", "env/return"), path, xlabel="world steps (wrapped env)")


def compare(a: argparse.Namespace, out: Path) -> None:
    budget = a.env_steps or (QUICK_BUDGET if a.quick else COMPARE_BUDGET)
    if not a.report:
        seeds = [int(s) for s in a.seeds.split(",") if s]
        jobs = [f"seed{s}/{arm}" for s in seeds for arm in ("sft", "rltr", "e2e")]
        base = [sys.executable, __file__, "--compare", "--out", str(out), "--env-steps", str(budget),
                *(["--quick"] if a.quick else [])]

        def command(job: str) -> list[str] | None:
            seed, arm = job.split("/")
            ready = arm == "sft" or (out / seed / "sft" / "result.json").exists()
            return [*base, "--worker", job] if ready else None

        run_jobs(jobs, command, out, a.parallel)
    results = load_compare(out)
    publish(compare_table(results), lambda path: compare_plot(results, out, path), out, a.write_docs,
            image="rltr_vs_e2e.png", caption="RLTR vs end-to-end GRPO",
            marks=(f"<!-- {COMPARE_MARK}:start -->", f"<!-- {COMPARE_MARK}:end -->"))


def publish(text: str, draw: Any, out: Path, write_docs: bool, *, image: str, caption: str,
            marks: tuple[str, str]) -> None:
    """Print a results table, draw its plot (into docs/img with ``write_docs``, else into ``out``) and, with
    ``write_docs``, put both between ``marks`` in docs/trainers/rltr.md."""
    print(text)
    root = Path(__file__).resolve().parents[1]
    print(f"plot: {draw((root / 'docs' / 'img' if write_docs else out) / image)}")
    if write_docs:
        write_marked(root / "docs" / "trainers" / "rltr.md", *marks, f"{text}\n\n![{caption}](../img/{image})")


# ------------------------------------------------------------------------------------------- RLTR alone
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
        c = r["config"]
        episodes = r["iterations"] * c["tasks_per_iteration"] * c["group_size"]  # one planner turn each
        lines.append(f"| {s} | {vals[0]:.1f} -> {vals[1]:.1f} ({vals[1] - vals[0]:+.1f}) | {vals[2]:.3f} -> {vals[3]:.3f} | "
                     f"{vals[4]:.3f} -> {vals[5]:.3f} | {episodes:,} | {r['wall_s'] / 60:.0f} min |")
    if len(results) > 1:
        m = [x / len(results) for x in sums]
        lines.append(f"| mean | {m[0]:.1f} -> {m[1]:.1f} ({m[1] - m[0]:+.1f}) | {m[2]:.3f} -> {m[3]:.3f} | "
                     f"{m[4]:.3f} -> {m[5]:.3f} | | |")
    return "\n".join(lines)


def plot(results: dict[int, dict], out: Path, path: Path) -> Path:
    """Training return (completeness - format term) and success against world steps, per seed."""
    runs = [(f"seed {seed}", out / f"seed{seed}" / "metrics.jsonl", f"C{k}", "-") for k, seed in enumerate(sorted(results))]
    return plot_curves(runs, ("env/return", "env/success_rate"), path, xlabel="world steps (wrapped env)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--compare", action="store_true", help="RLTR vs end-to-end GRPO from one shared SFT per seed")
    p.add_argument("--env-steps", type=int, default=None, help=f"--compare: world steps per arm ({COMPARE_BUDGET})")
    p.add_argument("--parallel", type=int, default=1, help="runs at the same time (one process each)")
    p.add_argument("--out", default=None, help="runs/rltr_example (--compare: runs/rltr_vs_e2e)")
    p.add_argument("--set", default="{}", help="JSON of RLTRConfig overrides for every run (RLTR alone)")
    p.add_argument("--report", action="store_true", help="only report the runs already in --out")
    p.add_argument("--write-docs", action="store_true", help="update docs/trainers/rltr.md and its plot")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out or ("runs/rltr_vs_e2e" if a.compare else "runs/rltr_example"))
    if a.compare and a.worker:  # "seed<N>/<sft|rltr|e2e>"
        seed_dir, arm = a.worker.split("/")
        seed = int(seed_dir.removeprefix("seed"))
        budget = a.env_steps or (QUICK_BUDGET if a.quick else COMPARE_BUDGET)
        res = (shared_sft(seed, out / seed_dir, a.quick) if arm == "sft"
               else run_arm(arm, seed, out / seed_dir, budget, a.quick))
        (out / a.worker / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    if a.compare:
        compare(a, out)
        return
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
    publish(table(results), lambda path: plot(results, out, path), out, a.write_docs, image="rltr_curves.png",
            caption="RLTR learning curves", marks=(MARK_START, MARK_END))


if __name__ == "__main__":
    main()
