"""Train sb3-contrib's MaskablePPO on small household scenes and test it on held-out rooms.

Two runs with the same seed and hyperparameters, differing only in the reward (``progress``: potential-
based shaping by subgoal progress, plus 1 on success; ``sparse``: 1 on success), train on procedural
tasks of the *train* rooms of ``PilotALFWorldSmall-v0`` (every task type, at most 6 receptacles and 8
objects). Each is then played on all 134 tasks of the ``valid_unseen`` split (rooms never seen in
training) and compared with a uniformly random admissible-command agent.

Actions are ``Discrete(K)`` over the admissible commands with masks, observations hashed bags of words
plus one feature row per command slot (``pilot_envs.wrappers``); the policy scores every slot with one
shared network (``pilot_envs.wrappers.sb3_policy.CommandScoringPolicy``; ``--policy mlp`` for SB3's
plain ``MultiInputPolicy``). Everything runs in this one process on one CPU thread.

    python examples/sb3_maskable_ppo.py --minutes 60          # the measured run of docs/results_sb3.md
    python examples/sb3_maskable_ppo.py --timesteps 20000 --out-md runs/sb3/r.md --out-png runs/sb3/r.png   # a quick look

The budget is ``--timesteps`` per run (250k by default: about 5 CPU-minutes per run, so roughly 12-15 minutes
for the whole script on an idle 2-core machine), capped by ``--minutes`` of wall-clock time per run.

Writes a learning-curve plot (``--out-png``), a markdown results table (``--out-md``) and the raw numbers
as JSON next to the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import pilot_envs  # noqa: F401  (registers the env ids)
from pilot_envs.core.contract import text_env
from pilot_envs.core.rewards import REWARD_MODES
from pilot_envs.wrappers import make_sb3_env
from pilot_envs.wrappers.sb3_policy import CommandScoringPolicy

SPLIT = "valid_unseen"
POLICIES = ("scorer", "mlp")
POLICY_NAMES = {"scorer": "CommandScoringPolicy", "mlp": "MultiInputPolicy (MLP)"}


@dataclass
class EvalResult:
    success: float
    progress: float
    steps: float
    by_type: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    reward_mode: str
    policy: str
    timesteps: int
    wall_s: float
    cpu_s: float
    greedy: EvalResult
    sampled: EvalResult
    curve: list[dict[str, float]]


@dataclass
class Report:
    command: str
    machine: str
    total_s: float
    load: tuple[float, float]
    args: dict[str, Any]
    random: EvalResult
    runs: list[RunResult]

    @classmethod
    def load_json(cls, path: Path) -> Report:
        d = json.loads(path.read_text())
        random = EvalResult(**d["random"])
        runs = [
            RunResult(**{**r, "greedy": EvalResult(**r["greedy"]), "sampled": EvalResult(**r["sampled"])})
            for r in d["runs"]
        ]
        return cls(d["command"], d["machine"], d["total_s"], tuple(d["load"]), d["args"], random, runs)


def write_report(report: Report, md: Path, png: Path) -> None:
    plot(report.runs, report.random, png, f"MaskablePPO on {report.args['env_id']}: held-out {SPLIT} success")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(report, png, md))
    png.with_suffix(".json").write_text(json.dumps(asdict(report), indent=1))
    print(f"wrote {md}, {png} and {png.with_suffix('.json')}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="PilotALFWorldSmall-v0")
    p.add_argument("--timesteps", type=int, default=250_000, help="training budget per run, in env steps")
    p.add_argument(
        "--minutes", type=float, default=12.0,
        help="wall-clock cap per training run; on a busy machine it can stop a run before --timesteps "
        "(the table reports the steps each run got)",
    )
    p.add_argument(
        "--runs", default="progress,sparse",
        help="comma-separated runs, each REWARD_MODE or REWARD_MODE:POLICY (e.g. progress,sparse,progress:mlp)",
    )
    p.add_argument("--policy", choices=POLICIES, default="scorer", help="policy of runs that name none")
    p.add_argument("--max-commands", type=int, default=32)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=256, help="rollout length per env and update")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=50_000, help="steps between learning-curve evaluations")
    p.add_argument("--curve-tasks", type=int, default=134, help="valid_unseen tasks per curve point")
    p.add_argument("--random-seeds", type=int, default=5, help="seeds of the random agent (results averaged)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-md", default="docs/results_sb3.md")
    p.add_argument("--out-png", default="docs/img/sb3_maskable_ppo.png")
    p.add_argument("--report-from", help="rewrite the page and plot from a saved results JSON (no training)")
    return p.parse_args(argv)


def parse_runs(args: argparse.Namespace) -> list[tuple[str, str]]:
    runs = []
    for spec in (s.strip() for s in args.runs.split(",")):
        if not spec:
            continue
        mode, _, policy_name = spec.partition(":")
        policy_name = policy_name or args.policy
        if mode not in REWARD_MODES or policy_name not in POLICIES:
            raise SystemExit(f"bad run {spec!r}: reward mode in {REWARD_MODES}, policy in {POLICIES}")
        runs.append((mode, policy_name))
    return runs


def make_env(args: argparse.Namespace, reward_mode: str):
    return make_sb3_env(args.env_id, max_commands=args.max_commands, reward_mode=reward_mode)


def play(envs: list, choose, seed: int) -> EvalResult:
    """Play task ``i`` of the split in ``envs[i]``, all envs in lockstep (one batched decision per step).

    ``choose(obs_batch, mask_batch) -> slot indices`` for the envs still playing.
    """
    obs = [env.reset(seed=seed + i, options={"split": SPLIT, "task_index": i})[0] for i, env in enumerate(envs)]
    steps, final, active = [0] * len(envs), [{}] * len(envs), list(range(len(envs)))
    while active:
        batch = {k: np.stack([obs[i][k] for i in active]) for k in obs[active[0]]}
        masks = np.stack([envs[i].action_masks() for i in active])
        still = []
        for i, action in zip(active, choose(batch, masks), strict=True):
            obs[i], _, term, trunc, info = envs[i].step(int(action))
            steps[i] += 1
            if term or trunc:
                final[i] = info
            else:
                still.append(i)
        active = still
    by_type: dict[str, list[bool]] = {}
    for info in final:
        by_type.setdefault(info["task_type"], []).append(bool(info["won"]))
    return EvalResult(
        float(np.mean([f["won"] for f in final])), float(np.mean([f["progress"] for f in final])),
        float(np.mean(steps)), {t: float(np.mean(v)) for t, v in sorted(by_type.items())},
    )


def evaluate_model(model: MaskablePPO, envs: list, *, deterministic: bool, seed: int) -> EvalResult:
    def choose(obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(obs, action_masks=masks, deterministic=deterministic)
        return actions

    return play(envs, choose, seed)


def evaluate_random(envs: list, seeds: int) -> EvalResult:
    results = []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        results.append(play(envs, lambda obs, masks, rng=rng: [rng.choice(np.flatnonzero(m)) for m in masks], 1000 * s))
    types = results[0].by_type
    return EvalResult(
        float(np.mean([r.success for r in results])),
        float(np.mean([r.progress for r in results])),
        float(np.mean([r.steps for r in results])),
        {t: float(np.mean([r.by_type[t] for r in results])) for t in types},
    )


class CurveCallback(BaseCallback):
    """Stops training at the wall-clock budget; every ``every`` steps, records held-out and train success."""

    def __init__(self, envs: list, every: int, budget_s: float, seed: int):
        super().__init__()
        self.envs, self.every, self.budget_s, self.seed = envs, every, budget_s, seed
        self.curve: list[dict[str, float]] = []
        self.eval_s = 0.0
        self.eval_cpu_s = 0.0
        self._next = 0
        self._start = self._start_cpu = 0.0

    def _on_training_start(self) -> None:
        self._start, self._start_cpu = time.perf_counter(), time.process_time()

    def train_seconds(self) -> float:
        """Wall-clock seconds of training so far, curve evaluations excluded."""
        return time.perf_counter() - self._start - self.eval_s

    def train_cpu_seconds(self) -> float:
        """CPU seconds of this process spent training so far, curve evaluations excluded."""
        return time.process_time() - self._start_cpu - self.eval_cpu_s

    def record(self) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        held_out = evaluate_model(self.model, self.envs, deterministic=True, seed=self.seed)
        self.eval_s += time.perf_counter() - t0
        self.eval_cpu_s += time.process_time() - c0
        episodes = [e["won"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else [0.0]
        point = {
            "timesteps": float(self.num_timesteps),
            "train_seconds": round(self.train_seconds(), 1),
            "valid_unseen_success": held_out.success,
            "train_success_last100": float(np.mean(episodes)),
        }
        self.curve.append(point)
        print(json.dumps(point), flush=True)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.record()
            self._next += self.every
        return self.train_seconds() < self.budget_s


def train(args: argparse.Namespace, reward_mode: str, policy_name: str, eval_envs: list) -> RunResult:
    def thunk(i: int):
        def make():
            env = Monitor(make_env(args, reward_mode), info_keywords=("won",))
            env.reset(seed=args.seed * 1000 + i)
            return env

        return make

    venv = DummyVecEnv([thunk(i) for i in range(args.n_envs)])
    if policy_name == "scorer":
        policy: Any = CommandScoringPolicy
        policy_kwargs: dict[str, Any] = {"hidden": args.hidden}
    else:
        policy, policy_kwargs = "MultiInputPolicy", {"net_arch": [args.hidden, args.hidden]}
    model = MaskablePPO(
        policy, venv, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
        learning_rate=args.lr, gamma=args.gamma, ent_coef=args.ent_coef, policy_kwargs=policy_kwargs,
        seed=args.seed, verbose=0,
    )
    callback = CurveCallback(eval_envs[: args.curve_tasks], args.eval_every, args.minutes * 60, args.seed)
    model.learn(args.timesteps, callback=callback)
    wall, cpu = callback.train_seconds(), callback.train_cpu_seconds()
    if callback.curve[-1]["timesteps"] < model.num_timesteps - args.n_envs * args.n_steps:
        callback.record()  # the end point, unless the last scheduled one is within one rollout of it
    greedy = evaluate_model(model, eval_envs, deterministic=True, seed=args.seed)
    sampled = evaluate_model(model, eval_envs, deterministic=False, seed=args.seed)
    return RunResult(
        reward_mode, policy_name, int(model.num_timesteps), round(wall, 1), round(cpu, 1), greedy, sampled, callback.curve
    )


def plot(runs: list[RunResult], random: EvalResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5.2))
    for run, color in zip(runs, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False):
        x = [p["timesteps"] for p in run.curve]
        ax.plot(x, [p["valid_unseen_success"] for p in run.curve], "-o", color=color, ms=3,
                label=f"{_label(run)}: valid_unseen (greedy)")
        ax.plot(x, [p["train_success_last100"] for p in run.curve], ":", color=color,
                label=f"{_label(run)}: train episodes (last 100)")
    ax.axhline(random.success, color="gray", ls="--", label="random admissible: valid_unseen")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(report: Report, png: Path, md: Path) -> str:
    args, runs, random = argparse.Namespace(**report.args), report.runs, report.random
    n = args.max_commands
    lines = [
        "# Stable-Baselines3: MaskablePPO on PilotALFWorldSmall",
        "",
        "Generated by `examples/sb3_maskable_ppo.py`; numbers are from one run (one seed) of exactly:",
        "",
        f"```\n{report.command}\n```",
        "",
        f"Training: procedural tasks of the train rooms of `{args.env_id}` (all six task types, at most 6",
        f"receptacles and 8 objects), {args.n_envs} envs in one process, `torch.set_num_threads(1)`.",
        f"Test: all tasks of `{SPLIT}` (rooms never seen in training) via",
        '`reset(options={"split": "valid_unseen", "task_index": i})`, 50 steps per episode.',
        f"Wrappers: `make_sb3_env(..., max_commands={n})` (`Discrete({n})` + masks, hashed features).",
        f"Policies: `CommandScoringPolicy` (hidden {args.hidden}) or SB3's `MultiInputPolicy` (MLP {args.hidden}x{args.hidden}); "
        f"MaskablePPO n_steps={args.n_steps}, batch={args.batch_size}, epochs={args.n_epochs}, lr={args.lr}, "
        f"gamma={args.gamma}, ent_coef={args.ent_coef}, seed={args.seed}.",
        f"Machine: {report.machine}, shared with other jobs (load average {report.load[0]:.1f} at the start, "
        f"{report.load[1]:.1f} at the end). The whole script took {report.total_s / 60:.1f} min of wall time; "
        "train times below exclude the learning-curve evaluations, and the CPU time is what an idle machine needs.",
        "",
        "| agent | policy | reward | train steps | train wall / CPU time | success, greedy | success, sampled | progress, greedy | progress, sampled |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| MaskablePPO | {POLICY_NAMES[r.policy]} | {r.reward_mode} | {r.timesteps:,} | {r.wall_s / 60:.1f} / {r.cpu_s / 60:.1f} min | "
            f"{r.greedy.success:.3f} | {r.sampled.success:.3f} | {r.greedy.progress:.3f} | {r.sampled.progress:.3f} |"
        )
    lines.append(
        f"| random admissible (mean of {args.random_seeds} seeds) | - | - | 0 | - | - | {random.success:.3f} | - | "
        f"{random.progress:.3f} |"
    )
    steps = sorted({int(p["timesteps"]) for r in runs for p in r.curve})
    lines += [
        "",
        f"Held-out `{SPLIT}` success (greedy) during training (random admissible: {random.success:.3f}):",
        "",
        "| env steps | " + " | ".join(_label(r) for r in runs) + " |",
        "|---:|" + "---:|" * len(runs),
    ]
    for t in steps:
        cells = []
        for r in runs:
            hit = [p["valid_unseen_success"] for p in r.curve if int(p["timesteps"]) == t]
            cells.append(f"{hit[0]:.3f}" if hit else "")
        lines.append(f"| {t:,} | " + " | ".join(cells) + " |")

    def first_at(run: RunResult, level: float) -> str:
        hit = [int(p["timesteps"]) for p in run.curve if p["valid_unseen_success"] >= level]
        return f"{hit[0]:,}" if hit else "not reached"

    lines += [
        "",
        "First curve point at or above 50% / 90% held-out success: "
        + "; ".join(f"{_label(r)} {first_at(r, 0.5)} / {first_at(r, 0.9)} steps" for r in runs) + ".",
    ]
    lines += [
        "",
        f"Success by task type on `{SPLIT}` at the end (greedy policy; random: mean over seeds):",
        "",
        "| task type | n | " + " | ".join(_label(r) for r in runs) + " | random |",
        "|---|---:|" + "---:|" * (len(runs) + 1),
    ]
    for t in random.by_type:
        lines.append(
            f"| {t} | {_count(t)} | " + " | ".join(f"{r.greedy.by_type.get(t, 0.0):.2f}" for r in runs)
            + f" | {random.by_type[t]:.2f} |"
        )
    rel = png.relative_to(md.parent) if png.is_relative_to(md.parent) else png
    lines += [
        "",
        f"![learning curves]({rel})",
        "",
        "Greedy: the policy's most likely admissible command; sampled: a command drawn from the policy. Curve",
        "points are greedy success on the held-out split and the success of the last 100 training episodes.",
        f"The raw numbers are in `{png.with_suffix('.json').name}` next to the plot; `--report-from` that file",
        "rewrites this page and the plot without training.",
        "",
        NOTES,
    ]
    return "\n".join(lines)


NOTES = """## What the agent sees, and what made it learn

* **Actions** (`DiscreteCommands`): slot `i` is the `i`-th admissible command in the env's sorted order;
  empty slots are masked, and an out-of-range or masked index plays `Nothing happens.` (a no-op that
  still costs a step). MaskablePPO samples only among the filled slots.
* **Observations** (`FeaturizeObservation`): CRC-32-hashed bags of words and word pairs of the feedback
  (256), the goal (64) and the plan (2 x 64; empty here, `plan_mode="none"`), progress, the subgoal flags,
  the elapsed fraction of the episode, the slot mask, and one row per slot: a hashed bag of words of the
  command (64, its verb hashed separately) plus six relational features (share of its words in the goal,
  share of its object instances in the latest feedback, share in the current plan step, how often it was
  executed this episode, whether it was the previous command, whether the slot is filled).
* **Policy** (`CommandScoringPolicy`): what a slot means changes every step, so a policy that reads the
  flattened slot rows (SB3's `MultiInputPolicy`) has to learn every rule once per slot position. In an
  exploratory run it learned slowly (progress reward, default 64x64 MLP: 11% training success and
  2% / 13% greedy / sampled `valid_unseen` success after 150k steps, where the scorer was at 93%).
  Scoring every (state, command) pair with one shared network (DRRN-style) fixed that; encoding only the
  filled slots made it about 2x cheaper. `--runs progress:mlp` reruns the MLP for comparison.
* The relational slot features (goal/feedback overlap, execution counts) are what let one network tell
  `take soapbar 1 from garbagecan 1` (wanted now) from `go to garbagecan 1` (already visited) in rooms
  it has never seen; the execution counts are the agent's only memory.
"""


def _label(run: RunResult) -> str:
    return f"PPO {run.reward_mode}" + ("" if run.policy == "scorer" else f" ({run.policy})")


def _count(task_type: str) -> int:
    from pilot_envs.alfworld.tasks import split_task_types

    return sum(t == task_type for t in split_task_types(SPLIT))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    md, png = Path(args.out_md), Path(args.out_png)
    if args.report_from:
        write_report(Report.load_json(Path(args.report_from)), md, png)
        return
    torch.set_num_threads(1)
    command = "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else ["examples/sb3_maskable_ppo.py", *argv]))
    start, load_start = time.perf_counter(), os.getloadavg()[0]

    first = make_env(args, "sparse")  # success does not depend on the reward mode
    n = text_env(first).splits()[SPLIT]
    eval_envs = [first] + [make_env(args, "sparse") for _ in range(n - 1)]
    random = evaluate_random(eval_envs, args.random_seeds)
    print(f"random admissible on {SPLIT}: success {random.success:.3f} progress {random.progress:.3f}", flush=True)

    runs = []
    for mode, policy_name in parse_runs(args):
        print(f"--- MaskablePPO, reward_mode={mode}, policy={policy_name}", flush=True)
        runs.append(train(args, mode, policy_name, eval_envs))
        r = runs[-1]
        print(f"{_label(r)}: {r.timesteps} steps in {r.wall_s:.0f}s; {SPLIT} success greedy {r.greedy.success:.3f} "
              f"sampled {r.sampled.success:.3f}", flush=True)

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__}"
    )
    report = Report(
        command, machine, round(time.perf_counter() - start, 1), (load_start, os.getloadavg()[0]),
        {k: v for k, v in vars(args).items() if k != "report_from"}, random, runs,
    )
    write_report(report, md, png)


if __name__ == "__main__":
    main()
