"""Two-arm comparisons at equal env steps over seeds: the scaffolding the comparison examples share.

An example describes its arms (:class:`Arm`: a label and a function that builds the trainer of one arm of one
seed, stopping at an env-step budget) and calls :func:`compare_main`. Each (seed, arm) runs in its own worker process
(``_jobs.run_jobs``) and writes ``<out>/seed<N>/<arm>/result.json``; the report reads them back, prints a table of
valid_unseen success (after SFT, after each arm) and draws the arms' training curves against env steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _jobs import run_jobs
from recipes import plot_curves, write_marked


@dataclass(frozen=True)
class Arm:
    name: str  # the folder and the key in results
    label: str  # the table's column
    build: Callable[[int, Path, int, bool], Any]  # (seed, output_dir, env-step budget, quick) -> a trainer to run


def run_arm(arm: Arm, seed: int, out: Path, budget: int, quick: bool) -> dict:
    """Train one arm of one seed; its summary (evaluations, env steps, wall time, last metrics)."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    trainer = arm.build(seed, out / f"seed{seed}" / arm.name, budget, quick)
    last = trainer.train()
    return {"arm": arm.name, "seed": seed, "config": trainer.config.__dict__, "wall_s": time.perf_counter() - t0,
            "iterations": trainer.step, "env_steps": trainer.env_steps_total, "eval": trainer.eval_history,
            "last": {k: v for k, v in last.items() if isinstance(v, float)}}


def load(out: Path) -> dict[int, dict[str, dict]]:
    """{seed: {arm: result}} from the ``result.json`` files under ``out``."""
    found: dict[int, dict[str, dict]] = {}
    for path in sorted(out.glob("seed*/*/result.json")):
        r = json.loads(path.read_text())
        found.setdefault(int(r["seed"]), {})[r["arm"]] = r
    return found


def success(result: dict, k: int = -1) -> float:
    return result["eval"][k]["by_type"]["all"]["success"]


def table(results: dict[int, dict[str, dict]], arms: Sequence[Arm]) -> str:
    """Markdown: success after SFT and after each arm per seed (change from SFT in brackets), env steps, means."""
    head = " | ".join(a.label for a in arms)
    lines = [f"| seed | after SFT | {head} | env steps ({' / '.join(a.name for a in arms)}) |",
             "|---" * (len(arms) + 3) + "|"]
    names = [a.name for a in arms]
    seeds = [s for s in sorted(results) if set(names) <= set(results[s])]
    sums = [0.0] * (len(arms) + 1)
    for s in seeds:
        runs = [results[s][n] for n in names]
        sft = success(runs[0], 0)
        assert all(success(r, 0) == sft for r in runs), "every arm of a seed starts from the same SFT weights"
        after = [success(r) for r in runs]
        for i, x in enumerate((sft, *after)):
            sums[i] += x
        cells = " | ".join(f"{100 * x:.1f} ({100 * (x - sft):+.1f})" for x in after)
        steps = " / ".join(f"{r['env_steps']:,}" for r in runs)
        lines.append(f"| {s} | {100 * sft:.1f} | {cells} | {steps} |")
    if len(seeds) > 1:
        m = [x / len(seeds) for x in sums]
        cells = " | ".join(f"{100 * x:.1f} ({100 * (x - m[0]):+.1f})" for x in m[1:])
        lines.append(f"| mean | {100 * m[0]:.1f} | {cells} | |")
    return "\n".join(lines)


def compare_main(doc: str, arms: Sequence[Arm], *, default_out: str, default_budget: Callable[[bool], int],
                 mark: str, image: str, curves: Sequence[str], pages: Sequence[str] = ("docs/results.md",)) -> None:
    """The command line of a comparison example (see the module docstring). ``mark``: the docs block's name
    (``<!-- mark:start -->``); ``pages``: the docs pages that show the table and the plot ``docs/img/<image>``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny budget, a few eval tasks")
    p.add_argument("--env-steps", type=int, default=None, help="env-step budget per run")
    p.add_argument("--parallel", type=int, default=1, help="runs at the same time (one process each)")
    p.add_argument("--out", default=default_out)
    p.add_argument("--report", action="store_true", help="only report the runs already in --out")
    p.add_argument("--write-docs", action="store_true", help=f"update {', '.join(pages)} and the plot")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out)
    budget = a.env_steps or default_budget(a.quick)
    by_name = {arm.name: arm for arm in arms}
    if a.worker:  # "seed<N>/<arm>"
        seed, name = a.worker.split("/")
        res = run_arm(by_name[name], int(seed.removeprefix("seed")), out, budget, a.quick)
        (out / a.worker / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    if not a.report:
        jobs = [f"seed{int(s)}/{arm.name}" for s in a.seeds.split(",") if s for arm in arms]
        base = [sys.executable, sys.argv[0], "--out", str(out), "--env-steps", str(budget),
                *(["--quick"] if a.quick else [])]
        run_jobs(jobs, lambda job: [*base, "--worker", job], out, a.parallel)
    results = load(out)
    text = table(results, arms)
    print(text)
    root = Path(__file__).resolve().parents[1]
    runs = [(f"{arm.name} seed {seed}", out / f"seed{seed}" / arm.name / "metrics.jsonl", f"C{k}", style)
            for k, seed in enumerate(sorted(results)) for arm, style in zip(arms, ("-", "--", ":"), strict=False)]
    img = plot_curves(runs, curves, (root / "docs" / "img" if a.write_docs else out) / image)
    print(f"plot: {img}")
    if a.write_docs:
        for page in pages:
            rel = Path("img") if Path(page).parent == Path("docs") else Path("../img")
            write_marked(root / page, f"<!-- {mark}:start -->", f"<!-- {mark}:end -->",
                         f"{text}\n\n![{' vs '.join(a.label for a in arms)}]({rel / image})")
