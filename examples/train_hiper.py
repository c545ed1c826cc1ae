"""HiPER vs GRPO vs PPO on PilotALFWorldSmall-v0 with the offline tiny model, on CPU, at equal env steps.

All three use the GRPO example's recipe (``GRPO_RECIPE`` of examples/recipes.py): the same
env setting (small scenes, its task types), the same tiny model (same tokenizer, same initial weights), the
same SFT warm start (episodes, steps, schedule; each method in its own answer format: ``hiper`` for HiPER,
``think_action`` with the milestone as thought for GRPO and PPO), the same learning rate and episodes per
iteration (GRPO with the recipe's episode-level advantage, not the GRPO example's GiGPO ``GRPO_ADVANTAGE``), and
the same budget of RL env steps (default: the most the GRPO example's RL can use, iterations x episodes x turn
cap). PPO and HiPER add a critic (learning rate 10x the actor's, the paper's
ratio) and play each task once instead of in groups of 8. Then every valid_unseen task of those types is
played at temperature 0.4. Each method runs in its own process (its own wall time and peak RSS),
``--parallel`` of them at a time.

    python examples/train_hiper.py --quick                       # smoke run (a few minutes)
    nice -n 10 python examples/train_hiper.py --parallel 3       # the measured run of docs/trainers/hiper.md
    nice -n 10 python examples/train_hiper.py --all-types        # all six task types (two-object, look too)
    python examples/train_hiper.py --full-rooms --segments-only  # the expert's segment lengths, no training
    python examples/train_hiper.py --full-rooms --env-steps 16000 --parallel 1   # full-size rooms (see below)

``--full-rooms``: full-size rooms (``PilotALFWorld-v0``, 10-40 receptacles, where the policy has to search for
an object over several turns) and a turn cap of ``FULL_ROOMS_TURNS`` for training and evaluation. HiPER's SFT expert writes task steps as subgoals (``--sft-segments task_steps``, the default;
``milestones`` is the rule of the small-room measurement). The segment lengths of the expert (both rules) and of
HiPER's policy after SFT and after RL (its evaluation episodes) are tabulated in ``<out>/results.md``.

Writes ``<out>/<method>/`` run folders (metrics.jsonl, transcripts, learning curves), ``<out>/results.json``,
``<out>/results.md`` (the tables) and ``<img>/hiper_success.png`` (valid_unseen success per task type,
after SFT and after RL) and ``<img>/hiper_curves.png`` (training success, return and invalid actions
against env steps); with ``--full-rooms`` ``hiper_full_success.png``, ``hiper_full_curves.png`` and
``hiper_full_segments.png`` (segment-length histograms) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _jobs import CHILD_ENV, run_jobs
from recipes import GRPO_RECIPE

METHODS = ("grpo", "ppo", "hiper")
FULL_ROOMS_TURNS = 20
"""Turn cap in full-size rooms (the planning setting's step cap, docs/planning.md): the expert needs ~6 turns,
a search over a room's receptacles many more."""
TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
         "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")


def settings(method: str, quick: bool, all_types: bool, full_rooms: bool = False,
             sft_segments: str = "task_steps", keep_penalty: float | None = None,
             change_penalty: float | None = None) -> dict:
    """The GRPO example's recipe for every method (env, tiny model, SFT warm start, lr, episodes per
    iteration, evaluation), plus what is specific to each method; ``full_rooms``: full-size rooms and the turn cap
    ``FULL_ROOMS_TURNS``."""
    recipe = dict(GRPO_RECIPE)
    if full_rooms:
        recipe.update(env="PilotALFWorld-v0", max_turns=FULL_ROOMS_TURNS, eval_max_turns=FULL_ROOMS_TURNS)
    episodes = recipe["tasks_per_iteration"] * recipe["group_size"]
    shared = {k: v for k, v in recipe.items() if k not in ("output_dir", "iterations", "save_every")}
    shared.update(iterations=100_000, tensorboard=False, progress_bar=False, save_final_model=False)
    if all_types:
        shared["env_kwargs"] = {k: v for k, v in shared.get("env_kwargs", {}).items() if k != "task_types"}
    critic = dict(tasks_per_iteration=episodes, group_size=1, critic_lr=10 * recipe["lr"])
    per_method = {
        "grpo": {},
        "ppo": critic,
        "hiper": {**critic, "prompt_format": "hiper", "invalid_action_penalty": 0.0, "invalid_penalty":
                  recipe.get("invalid_action_penalty", 0.1),
                  "instruction": "Answer with <switch>KEEP or SWITCH</switch><subgoal>...</subgoal><action>...</action>.",
                  "sft_segments": sft_segments,
                  **({} if keep_penalty is None else {"keep_penalty": keep_penalty}),
                  **({} if change_penalty is None else {"subgoal_change_penalty": change_penalty})},
    }
    quick_kw = dict(sft_episodes=40, sft_steps=40, sft_warmup_steps=5, max_turns=6, eval_max_turns=6, eval_tasks=12,
                    eval_samples=1, num_envs=16, tiny_corpus_episodes=60)
    return {**shared, **per_method[method], **(quick_kw if quick else {})}


def default_budget(quick: bool) -> int:
    """The most env steps the GRPO example's RL can use: iterations x episodes x turn cap."""
    r = GRPO_RECIPE
    return 300 if quick else r["iterations"] * r["tasks_per_iteration"] * r["group_size"] * r["max_turns"]


def _trainer(method: str):
    from trainers.grpo import GRPOConfig, GRPOTrainer
    from trainers.hiper import HiPERConfig, HiPERTrainer
    from trainers.ppo import PPOConfig, PPOTrainer

    return {"grpo": (GRPOConfig, GRPOTrainer), "ppo": (PPOConfig, PPOTrainer),
            "hiper": (HiPERConfig, HiPERTrainer)}[method]


def run_one(method: str, out: Path, budget: int, seed: int, setting: dict) -> dict:
    """Train one method until ``budget`` RL env steps (whole iterations), evaluate, return the summary."""
    import torch

    torch.set_num_threads(1)
    from trainers.hiper.memory import measured_tensor_bytes

    config_cls, trainer_cls = _trainer(method)

    class Budgeted(trainer_cls):  # stop after the iteration that reaches the env-step budget
        def on_step_end(self, batch, metrics):
            super().on_step_end(batch, metrics)
            if self.env_steps_total >= budget:
                self.config.iterations = self.step + 1

    kwargs = {**settings(method, **setting), "seed": seed, "output_dir": str(out / method)}
    t0 = time.perf_counter()
    trainer = Budgeted(config_cls(**kwargs))
    last = trainer.train()
    wall = time.perf_counter() - t0
    tensors = {"policy": measured_tensor_bytes(trainer.policy.model, trainer.optimizer)}
    if hasattr(trainer, "critic"):
        tensors["critic"] = measured_tensor_bytes(trainer.critic, trainer.critic_optimizer)
    if trainer.ref_model is not None:
        tensors["reference"] = measured_tensor_bytes(trainer.ref_model)
    return {
        "method": method, "config": kwargs, "wall_s": wall, "iterations": trainer.step,
        "env_steps": trainer.env_steps_total, "eval": trainer.eval_history,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tensor_bytes": tensors,
        "last": {k: v for k, v in last.items() if isinstance(v, float)},
    }


# ------------------------------------------------------------------------------------------ reporting
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def tables(results: dict[str, dict]) -> str:
    """Markdown: success per task type after SFT and after RL, and the run costs."""
    methods = [m for m in METHODS if m in results]
    first = results[methods[0]]["eval"][0]["by_type"]
    lines = ["| task type | n | " + " | ".join(f"{m} SFT | {m} RL" for m in methods) + " |",
             "|---|---|" + "---|---|" * len(methods)]
    for t in [*TYPES, "all"]:
        if t not in first:
            continue
        cells = []
        for m in methods:
            ev = results[m]["eval"]
            cells += [_pct(ev[0]["by_type"].get(t, {}).get("success")), _pct(ev[-1]["by_type"].get(t, {}).get("success"))]
        lines.append(f"| {t} | {int(first[t]['n'])} | " + " | ".join(cells) + " |")
    lines += ["", "| method | RL iterations | RL env steps | wall time (incl. SFT + 2 evals) | peak RSS | "
              "final progress (valid_unseen) |", "|---|---|---|---|---|---|"]
    for m in methods:
        r = results[m]
        prog = r["eval"][-1]["by_type"]["all"]["progress"]
        lines.append(f"| {m} | {r['iterations']} | {r['env_steps']:,} | {r['wall_s'] / 60:.1f} min | "
                     f"{r['peak_rss_mb']:.0f} MB | {prog:.3f} |")
    return "\n".join(lines)


def expert_segments(kwargs: dict) -> dict[str, float]:
    """Segment lengths of the SFT expert in the ``hiper`` format (its labelling rule ``kwargs["sft_segments"]``) on
    every task of the evaluation split, played to the turn cap; :func:`segment_stats` plus ``turns`` (mean)."""
    import gymnasium as gym

    import pilot_envs  # noqa: F401  (registers the envs)
    from trainers.core.evaluation import split_tasks
    from trainers.core.sft import expert_response
    from trainers.hiper.steps import TaskStepInfo
    from trainers.hiper.structure import parse_hiper, segment_lengths

    env = gym.make(kwargs["env"], **kwargs.get("env_kwargs", {}))
    env = TaskStepInfo(env) if kwargs["sft_segments"] == "task_steps" else env
    lengths, turns = [], []
    for task in split_tasks(env, kwargs.get("eval_split") or "valid_unseen", kwargs.get("eval_tasks"), seed=0):
        obs, info = env.reset(seed=task.seed, options=dict(task.options or {}))
        carried, starts = None, []
        for turn in range(kwargs["eval_max_turns"]):
            if not info.get("expert_action"):
                break
            text, written = expert_response("hiper", obs, info, turn_idx=turn, previous=carried)
            starts.append(turn == 0 or parse_hiper(text).switches)
            carried = written or carried
            obs, _, term, trunc, info = env.step(text)
            if term or trunc:
                break
        lengths += segment_lengths(starts)
        turns.append(len(starts))
    env.close()
    return episode_segment_stats(lengths, turns)


def episode_segment_stats(lengths: list[int], turns: list[int]) -> dict[str, float]:
    """:func:`~trainers.hiper.structure.segment_stats` of the segment lengths plus ``turns``, the episodes' mean
    number of turns."""
    from trainers.hiper.structure import segment_stats

    return {**segment_stats(lengths), "turns": sum(turns) / max(1, len(turns))}


def policy_segments(run: Path) -> dict[str, dict[str, float]]:
    """Segment lengths of a HiPER run's policy on its evaluation episodes (first eval = after SFT, last = after RL,
    from ``transcripts/eval-step-*.jsonl``): all segments, and only those in which the env executed at least one
    action (a policy stuck on invalid commands makes segments of its own)."""
    from trainers.hiper.structure import parse_hiper, segment_lengths

    def stats(path: Path, executed: bool) -> dict[str, float]:
        lengths, turns = [], []
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            starts = [i == 0 or parse_hiper(t["response"]).switches for i, t in enumerate(rec["turns"])]
            at = 0
            for n in segment_lengths(starts):
                if not executed or any(t["action_valid"] for t in rec["turns"][at : at + n]):
                    lengths.append(n)
                at += n
            turns.append(len(starts))
        return episode_segment_stats(lengths, turns)

    evals = sorted((run / "transcripts").glob("eval-step-*.jsonl"))
    out = {}
    for stage, path in (("SFT", evals[0] if evals else None), ("RL", evals[-1] if len(evals) > 1 else None)):
        if path is not None:
            out[f"policy after {stage} (eval)"] = stats(path, executed=False)
            out[f"policy after {stage} (eval), segments with an executed action"] = stats(path, executed=True)
    return out


def segment_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per source of segments (mean, median, share longer than one turn, histogram)."""
    from trainers.hiper.structure import LENGTH_BUCKETS

    buckets = [b for b, _, _ in LENGTH_BUCKETS]
    lines = ["| segments of | episodes' mean turns | segments | mean | median | > 1 turn | turns in > 1 | "
             + " | ".join(f"len {b}" for b in buckets) + " |", "|---|" + "---:|" * (6 + len(buckets))]
    for name, st in rows.items():
        lines.append(f"| {name} | {st['turns']:.1f} | {int(st['segments'])} | {st['mean']:.2f} | {st['median']:.1f} | "
                     f"{100 * st['share_multi']:.0f}% | {100 * st['turn_share_multi']:.0f}% | "
                     + " | ".join(f"{100 * st[f'share_{b}']:.0f}%" for b in buckets) + " |")
    return "\n".join(lines)


def plots(results: dict[str, dict], out: Path, img: Path, prefix: str = "hiper",
          segments: dict[str, dict] | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainers.core.logger import read_metrics

    methods = [m for m in METHODS if m in results]
    img.mkdir(parents=True, exist_ok=True)
    types = [t for t in [*TYPES, "all"] if t in results[methods[0]]["eval"][-1]["by_type"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    width = 0.8 / len(methods)
    for ax, (stage, idx) in zip(axes, (("after SFT", 0), ("after RL", -1)), strict=True):
        for k, m in enumerate(methods):
            by = results[m]["eval"][idx]["by_type"]
            ax.bar([i + k * width for i in range(len(types))], [100 * by[t]["success"] for t in types], width,
                   label=m)
        ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(types))])
        ax.set_xticklabels([t.replace("_then_place_in_recep", "").replace("_and_place", "").replace("pick_", "")
                            for t in types], rotation=20, fontsize=8)
        ax.set_title(f"valid_unseen success, {stage}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("success (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    bars = img / f"{prefix}_success.png"
    fig.savefig(bars, dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for key, ax in zip(("env/success_rate", "env/return", "env/invalid_action_rate"), axes, strict=True):
        for m in methods:
            recs = [r for r in read_metrics(out / m / "metrics.jsonl") if key in r and "env/steps_total" in r]
            ax.plot([r["env/steps_total"] for r in recs], [r[key] for r in recs], label=m)
        ax.set_title(f"training {key}", fontsize=10)
        ax.set_xlabel("env steps", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    curves = img / f"{prefix}_curves.png"
    fig.savefig(curves, dpi=110)
    plt.close(fig)
    if not segments:
        return [bars, curves]
    from trainers.hiper.structure import LENGTH_BUCKETS

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(segments)
    for k, (name, st) in enumerate(segments.items()):
        ax.bar([i + k * width for i in range(len(LENGTH_BUCKETS))],
               [100 * st[f"share_{b}"] for b, _, _ in LENGTH_BUCKETS], width,
               label=f"{name}: mean {st['mean']:.2f}")
    ax.set_xticks([i + width * (len(segments) - 1) / 2 for i in range(len(LENGTH_BUCKETS))])
    ax.set_xticklabels([b for b, _, _ in LENGTH_BUCKETS])
    ax.set_xlabel("segment length (turns)", fontsize=8)
    ax.set_ylabel("share of segments (%)")
    ax.set_title("HiPER segment lengths (valid_unseen episodes)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    recs = [r for r in read_metrics(out / "hiper" / "metrics.jsonl") if "hiper/segment_length" in r]
    steps = [r["env/steps_total"] for r in recs]
    ax2.plot(steps, [r["hiper/segment_length"] for r in recs], label="mean turns per segment")
    ax2.plot(steps, [r.get("hiper/segment_length_median", float("nan")) for r in recs], "--", label="median")
    ax2.set_xlabel("env steps", fontsize=8)
    ax2.set_title("HiPER training rollouts (temperature 1)", fontsize=10)
    ax3 = ax2.twinx()
    ax3.plot(steps, [100 * r.get("hiper/segment_length_share_multi", float("nan")) for r in recs], ":", color="C2",
             label="segments > 1 turn (%, right)")
    ax3.set_ylim(0, 100)
    lines = ax2.get_legend_handles_labels()[0] + ax3.get_legend_handles_labels()[0]
    ax2.legend(lines, [ln.get_label() for ln in lines], fontsize=7)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    hist = img / f"{prefix}_segments.png"
    fig.savefig(hist, dpi=110)
    plt.close(fig)
    return [bars, curves, hist]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny budget, a few eval tasks")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of grpo,ppo,hiper")
    p.add_argument("--env-steps", type=int, default=None,
                   help="RL env-step budget per method (default: the most the GRPO example can use)")
    p.add_argument("--all-types", action="store_true",
                   help="train and evaluate on all six task types (the GRPO example uses four)")
    p.add_argument("--full-rooms", action="store_true",
                   help=f"full-size rooms (PilotALFWorld-v0), turn cap {FULL_ROOMS_TURNS}")
    p.add_argument("--sft-segments", default="task_steps", choices=("task_steps", "milestones"),
                   help="HiPER's SFT subgoals: task steps (default) or every env milestone (the small-room runs)")
    p.add_argument("--keep-penalty", type=float, default=None,
                   help="HiPER's KEEP shaping magnitude (default: HiPERConfig's 0.3)")
    p.add_argument("--change-penalty", type=float, default=None,
                   help="HiPER's shaping for a KEEP turn that changes the subgoal (default: HiPERConfig's 0.3)")
    p.add_argument("--segments-only", action="store_true",
                   help="only measure the expert's segment lengths (both labelling rules) in this setting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parallel", type=int, default=1, help="methods trained at the same time (one process each)")
    p.add_argument("--out", default=None, help="output folder (default runs/hiper_example, or runs/hiper_full)")
    p.add_argument("--img", default=None, help="plot folder (default: docs/img, or <out> with --quick)")
    p.add_argument("--report", action="store_true", help="only aggregate the result.json files already in --out")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out or ("runs/hiper_full" if a.full_rooms else "runs/hiper_example"))
    setting = {"quick": a.quick, "all_types": a.all_types, "full_rooms": a.full_rooms, "sft_segments": a.sft_segments,
               "keep_penalty": a.keep_penalty, "change_penalty": a.change_penalty}
    budget = a.env_steps or default_budget(a.quick)
    if a.segments_only:
        print(segment_table({rule: expert_segments(settings("hiper", **{**setting, "sft_segments": rule}))
                             for rule in ("milestones", "task_steps")}))
        return
    if a.worker == "prepare":  # build the cached tiny model once, before parallel workers would race for it
        config_cls, trainer_cls = _trainer("grpo")
        trainer_cls(config_cls(**{**settings("grpo", **setting), "seed": a.seed, "output_dir": str(out / "prepare")}))
        return
    if a.worker:
        res = run_one(a.worker, out, budget, a.seed, setting)
        (out / a.worker / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    methods = [m for m in a.methods.split(",") if m]
    if unknown := set(methods) - set(METHODS):
        p.error(f"unknown methods {sorted(unknown)}")
    out.mkdir(parents=True, exist_ok=True)
    flags = [*(["--quick"] if a.quick else []), *(["--all-types"] if a.all_types else []),
             *(["--full-rooms"] if a.full_rooms else []), "--sft-segments", a.sft_segments,
             *([] if a.keep_penalty is None else ["--keep-penalty", str(a.keep_penalty)]),
             *([] if a.change_penalty is None else ["--change-penalty", str(a.change_penalty)])]
    if not a.report:
        worker = [sys.executable, __file__, "--out", str(out), "--seed", str(a.seed), *flags, "--worker"]
        subprocess.run([*worker, "prepare"], env={**os.environ, **CHILD_ENV}, check=True)
        run_jobs(methods, lambda m: [*worker, m, "--env-steps", str(budget)], out, a.parallel)
    results = {m: json.loads((out / m / "result.json").read_text()) for m in methods}
    md = tables(results)
    segments: dict[str, dict] = {}
    if "hiper" in results:
        segments = {f"expert ({rule})": expert_segments(settings("hiper", **{**setting, "sft_segments": rule}))
                    for rule in ("milestones", "task_steps")}
        segments.update(policy_segments(out / "hiper"))
        md += "\n\nHiPER segment lengths (turns per segment)\n\n" + segment_table(segments)
        results["hiper"]["segments"] = segments
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(md + "\n")
    img = Path(a.img) if a.img else (out if a.quick else Path("docs/img"))
    prefix = "hiper_full" if a.full_rooms else "hiper"
    for path in plots(results, out, img, prefix, segments):
        print("wrote", path)
    print(md)


if __name__ == "__main__":
    main()
