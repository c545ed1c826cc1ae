"""PPO vs PPO+EPO and GRPO vs GRPO+EPO with the offline tiny model on CPU, at the GRPO example's budget.

Every run uses the GRPO example's recipe (``GRPO_RECIPE`` of examples/recipes.py, so the examples stay in step):
small-scene ``PilotALFWorldSmall-v0`` (its four task types), the same tiny model and SFT warm start, 64
training episodes per iteration (GRPO with the recipe's episode-level advantage, not the example's GiGPO),
then valid_unseen at temperature 0.4. The GRPO pair runs the recipe's iterations; the PPO pair (64 tasks x 1
rollout per iteration, critic lr 10x the actor's) stops at the end of the iteration that reaches the env
steps the GRPO baseline played. EPO adds only its terms, with the published coefficients (c_H 0.001, beta 1,
kappa (0, 2), alpha 0.1 on ALFWorld / 0.05 on ScienceWorld) and its phase schedule over the run; the KL
coefficient is the recipe's in every arm, so each pair differs only by EPO's entropy terms.

The baselines run as the EPO trainer with c_H = 0, which tests/trainers/test_epo.py proves is exactly the
baseline (same losses, gradients and weights), so they log the same per-turn entropies. ``PilotScienceWorld-v0``
is added when it is registered and ``--envs`` asks for it, in a reduced setting (``ENVS``). Each run is its
own process, ``--parallel`` at a time.

    python examples/train_epo.py --quick            # smoke run (a few minutes on 2 cores)
    nice -n 10 python examples/train_epo.py --parallel 2    # the measured run of docs/trainers/epo.md
    python examples/train_epo.py --report           # tables and plots from the finished runs

Writes ``<out>/<env>/<method>/`` run folders, ``<out>/results.json``, ``<out>/results.md`` and the plots
``<img>/epo_entropy.png`` (token entropy and tokens outside the band against env steps),
``<img>/epo_entropy_turns.png`` (entropy per turn index) and ``<img>/epo_success.png`` (training success).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _jobs import run_jobs
from recipes import GRPO_RECIPE

METHODS = ("grpo", "epo_grpo", "ppo", "epo_ppo")
EPO = dict(entropy_coef=0.001, epo_beta=1.0, epo_kappa_lo=0.0, epo_kappa_hi=2.0)
"""EPO's published coefficients (alpha is per env)."""
ENVS = {
    "alfworld": dict(epo_alpha=0.1),
    # A reduced setting (ScienceWorld's JVM steps cost ~10x an ALFWorld step, and its prompts are long: an SFT
    # step on 1,024-token prompts took 2-6 s): two "find" tasks with the easy simplifications, deterministic
    # wording (GRPO groups see the same text), 640-token prompts, 32 episodes per iteration in 4 AdamW steps
    # (10 iterations of one step each did not move the policy at all). The turn cap must exceed the expert's
    # path: the dev split's gold paths take 5-15 actions (a cap of 10 left 107 of its 150 tasks unsolvable and
    # cut the SFT demonstrations short).
    "scienceworld": dict(env="PilotScienceWorld-v0", epo_alpha=0.05, eval_split="dev", eval_tasks=None,
                         env_kwargs={"task": ["find-animal", "find-plant"], "simplifications": "easy",
                                     "deterministic": True},
                         num_envs=8, tasks_per_iteration=4, iterations=25, mini_batches=4, max_turns=16,
                         eval_max_turns=16, max_prompt_tokens=640, sft_episodes=100, sft_steps=300,
                         tiny_corpus_episodes=100, eval_samples=1, save_every=5),
}
QUICK = dict(eval_samples=1, sft_episodes=40, sft_steps=40, sft_warmup_steps=5, iterations=3, tasks_per_iteration=2, num_envs=16,
             max_turns=6, eval_max_turns=6, eval_tasks=12, tiny_corpus_episodes=60, save_every=0)
QUICK_ENVS = {"scienceworld": dict(num_envs=4, sft_episodes=8, sft_steps=8, tiny_corpus_episodes=8, eval_tasks=4)}


def settings(env: str, method: str, quick: bool, seed: int, out: Path) -> dict:
    """The config fields of one run."""
    base = method.removeprefix("epo_")
    kw = {**GRPO_RECIPE, **ENVS[env], **(QUICK if quick else {}), **(QUICK_ENVS.get(env, {}) if quick else {}),
          "base": base, "seed": seed, "output_dir": str(out / env / method)}
    if base == "ppo":  # as many episodes per iteration as GRPO (tasks x group), critic lr 10x the actor's
        kw.update(tasks_per_iteration=kw["tasks_per_iteration"] * kw["group_size"], group_size=1,
                  critic_lr=10 * kw["lr"])
    kw.update(EPO if method.startswith("epo_") else {"entropy_coef": 0.0})  # c_H = 0: exactly the baseline
    return kw


def run_one(env: str, method: str, out: Path, budget: int | None, quick: bool, seed: int) -> dict:
    """Train one run (until ``budget`` env steps when given, whole iterations), evaluate, return the summary."""
    import torch

    torch.set_num_threads(1)
    from trainers.epo import EPOConfig
    from trainers.epo.trainer import TRAINERS

    kwargs = settings(env, method, quick, seed, out)
    if budget:
        kwargs.update(iterations=100_000, epo_schedule_env_steps=budget)
    cls = TRAINERS[kwargs["base"]]

    class Budgeted(cls):  # stop after the iteration that reaches the env-step budget
        def on_step_end(self, batch, metrics):
            super().on_step_end(batch, metrics)
            played = self.env_steps_total + metrics["env/steps"] * self.accelerator.num_processes  # incl. this one
            if budget and played >= budget:
                self.config.iterations = self.step + 1

    t0 = time.perf_counter()
    trainer = Budgeted(EPOConfig(**kwargs))
    last = trainer.train()
    return {"env": env, "method": method, "config": kwargs, "wall_s": time.perf_counter() - t0,
            "iterations": trainer.step, "env_steps": trainer.env_steps_total, "budget": budget,
            "eval": trainer.eval_history, "last": {k: v for k, v in last.items() if isinstance(v, float)}}


# ------------------------------------------------------------------------------------------ reporting
def _records(out: Path, env: str, method: str) -> list[dict]:
    from trainers.core.logger import read_metrics

    return [r for r in read_metrics(out / env / method / "metrics.jsonl") if "env/steps_total" in r]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def entropy_summary(recs: list[dict]) -> dict[str, float]:
    """Token entropy at the first and last iterations, its minimum, the mean fraction outside the band."""
    ent = [r["epo/entropy"] for r in recs if r.get("epo/entropy") is not None]
    tail = ent[-max(1, len(ent) // 10) :]
    out = [r["epo/outside_band_frac"] for r in recs if r.get("epo/outside_band_frac") is not None]
    return {"first": ent[0], "min": min(ent), "last10": sum(tail) / len(tail),
            "outside": sum(out) / max(1, len(out))} if ent else {}


def tables(results: dict[str, dict[str, dict]], out: Path) -> str:
    lines = []
    for env, runs in results.items():
        methods = [m for m in METHODS if m in runs]
        lines += [f"**{runs[methods[0]]['config']['env']}** ({runs[methods[0]]['config'].get('eval_split', 'valid_unseen')}, "
                  f"{int(runs[methods[0]]['eval'][0]['by_type']['all']['n'])} episodes, temperature 0.4)", "",
                  "| method | success after SFT | success after RL | progress after RL | RL iterations | RL env steps "
                  "| wall time | entropy first -> min -> last 10% | tokens outside band |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for m in methods:
            r = runs[m]
            first, final = r["eval"][0]["by_type"]["all"], r["eval"][-1]["by_type"]["all"]
            e = entropy_summary(_records(out, env, m))
            ent = f"{e['first']:.3f} -> {e['min']:.3f} -> {e['last10']:.3f}" if e else "-"
            lines.append(f"| {m} | {_pct(first['success'])} | {_pct(final['success'])} | {final['progress']:.3f} | "
                         f"{r['iterations']} | {r['env_steps']:,} | {r['wall_s'] / 60:.1f} min | {ent} | "
                         f"{_pct(e.get('outside'))}% |")
        lines.append("")
    return "\n".join(lines)


def plots(results: dict[str, dict[str, dict]], out: Path, img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    envs = list(results)
    paths = []
    for name, keys in (("entropy", ("epo/entropy", "epo/outside_band_frac")),
                       ("success", ("env/success_rate", "env/return"))):
        fig, axes = plt.subplots(len(envs), 4, figsize=(16, 3.4 * len(envs)), squeeze=False)
        for row, env in enumerate(envs):
            for col, (key, base) in enumerate((k, b) for k in keys for b in ("grpo", "ppo")):
                ax = axes[row][col]
                for m in (base, f"epo_{base}"):
                    if m in results[env]:
                        recs = [r for r in _records(out, env, m) if r.get(key) is not None]
                        ax.plot([r["env/steps_total"] for r in recs], [r[key] for r in recs], label=m)
                ax.set_title(f"{env}: {key}", fontsize=9)
                ax.set_xlabel("env steps", fontsize=8)
                ax.grid(alpha=0.3)
                if ax.lines:
                    ax.legend(fontsize=7)
                else:  # a pair that did not run (e.g. no PPO on ScienceWorld)
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="gray")
        fig.tight_layout()
        paths.append(img / f"epo_{name}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    runs = [(env, m) for env in envs for m in METHODS if m in results[env]]
    fig, axes = plt.subplots(len(envs), 4, figsize=(16, 3.4 * len(envs)), squeeze=False, sharey="row")
    for ax, (env, m) in zip(axes.flat, runs, strict=False):
        recs = _records(out, env, m)
        for k in range(0, 10, 3):
            pts = [(r["env/steps_total"], r[f"epo/entropy_turn_{k}"]) for r in recs if r.get(f"epo/entropy_turn_{k}")]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=f"turn {k}")
        ax.set_title(f"{env}: {m} entropy per turn index", fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_axis_off()
    fig.tight_layout()
    paths.append(img / "epo_entropy_turns.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny budget, a few eval tasks")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--envs", default="alfworld,scienceworld", help="alfworld, scienceworld (when registered)")
    p.add_argument("--env-steps", type=int, default=None,
                   help="env-step budget of every run (default: the GRPO pair runs the recipe's iterations, the PPO "
                        "pair stops at the GRPO baseline's env steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parallel", type=int, default=1, help="runs trained at the same time (one process each)")
    p.add_argument("--out", default="runs/epo_example")
    p.add_argument("--img", default=None, help="plot folder (default: docs/img, or <out> with --quick)")
    p.add_argument("--report", action="store_true", help="only rebuild results.md and the plots from finished runs")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out)
    if a.worker:
        env, method = a.worker.split("/")
        res = run_one(env, method, out, a.env_steps, a.quick, a.seed)
        (out / env / method / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    import gymnasium as gym

    import pilot_envs  # noqa: F401  (registers the env ids)

    methods = [m for m in a.methods.split(",") if m]
    if unknown := set(methods) - set(METHODS):
        p.error(f"unknown methods {sorted(unknown)}")
    envs = []
    for env in (e for e in a.envs.split(",") if e):
        if env not in ENVS:
            p.error(f"unknown env {env!r}")
        env_id = ENVS[env].get("env", GRPO_RECIPE["env"])
        if env_id in gym.registry:
            envs.append(env)
        else:
            print(f"{env_id} is not registered: skipping {env}", flush=True)

    def command(job: str) -> list[str] | None:
        """The worker command of a job; None while a PPO run waits for the GRPO baseline's env-step count."""
        env, method = job.split("/")
        steps = a.env_steps
        if not steps and method.endswith("ppo"):
            ref = out / env / "grpo" / "result.json"
            if not ref.exists():
                if "grpo" not in methods:
                    p.error(f"the PPO runs take their budget from {ref}: run grpo first or pass --env-steps")
                return None
            steps = int(json.loads(ref.read_text())["env_steps"])
        return [sys.executable, __file__, "--worker", job, "--out", str(out), "--seed", str(a.seed),
                *(["--env-steps", str(steps)] if steps else []), *(["--quick"] if a.quick else [])]

    if not a.report:
        run_jobs([f"{e}/{m}" for e in envs for m in methods], command, out, a.parallel)
    done = {e: [m for m in methods if (out / e / m / "result.json").exists()] for e in envs}
    results = {e: {m: json.loads((out / e / m / "result.json").read_text()) for m in ms} for e, ms in done.items() if ms}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    md = tables(results, out)
    (out / "results.md").write_text(md + "\n")
    for path in plots(results, out, Path(a.img) if a.img else (out if a.quick else Path("docs/img"))):
        print("wrote", path)
    print(md)


if __name__ == "__main__":
    main()
