"""Does the plan decide the outcome? The planning setting measured with a fixed executor.

The planner env (``pilot_envs.multiagent.planner_env.PlannerEnv``: the planner's seat of ``planner_executor_v0``,
the executor the plan follower, which carries out a plan literally) is given, for every task of a split, one
plan of each kind below, and the executor's success, the plan's completeness and the env steps used are
recorded at several step caps:

* **oracle**: the milestones, each find step naming the place where the oracle finds the object;
* **prior**: the milestones, each find step listing the room's receptacles in the order of where that object
  class was found over the train split's expert episodes (what a planner that never sees the room's contents
  can know: the best a learned planner can aim at);
* **milestones only**: the milestones without places (the env's own oracle plan: the follower then searches
  the room in its listed order);
* **shuffled**, **step missing**, **wrong places first**: the oracle plan damaged (``pilot_envs.alfworld.plans``);
* **no plan**: the planner writes nothing the env reads as a plan.

    python examples/plan_matters.py                 # PilotALFWorld-v0 and PilotALFWorldSmall-v0, valid_unseen
    python examples/plan_matters.py --write-docs    # also write the tables into docs/planning.md

Runs in about a minute on one core (the engine is native; no model).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean

from recipes import write_marked

from pilot_envs.alfworld.follower import rooms_receptacles
from pilot_envs.alfworld.plans import SearchPrior, degrade, located_plan, prior_plan
from pilot_envs.multiagent.planner_env import PlannerEnv
from trainers.core.prompts import format_plan

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- plan-matters:start -->", "<!-- plan-matters:end -->"
PlanFn = Callable[[dict, Sequence[str], int], "tuple[str, ...] | None"]


def plan_kinds(prior: SearchPrior) -> dict[str, PlanFn]:
    """Plan kind -> (reset info, room receptacles, seed) -> plan steps (None: no plan)."""

    def oracle(info: dict, recs: Sequence[str], seed: int) -> tuple[str, ...]:
        return located_plan(info["subgoals"], info["expert_plan"])

    kinds: dict[str, PlanFn] = {
        "oracle": oracle,
        "prior": lambda info, recs, seed: prior_plan(info["subgoals"], recs, prior),
        "milestones only": lambda info, recs, seed: tuple(info["subgoals"]),
    }
    for how in ("shuffled", "step missing", "wrong places first"):
        kinds[how] = lambda info, recs, seed, how=how: degrade(oracle(info, recs, seed), how, recs, seed)
    kinds["no plan"] = lambda info, recs, seed: None
    return kinds


def search_prior(env_id: str, n_tasks: int) -> SearchPrior:
    """Where each object class is found over the expert episodes of the first ``n_tasks`` train tasks."""
    env = PlannerEnv(env_id)
    prior = SearchPrior()
    for i in range(min(n_tasks, env.splits()["train"])):
        _, info = env.reset(seed=0, options={"split": "train", "task_index": i})
        prior.add(info["expert_plan"])
    env.close()
    return prior


def measure(env_id: str, split: str, caps: Sequence[int], kinds: dict[str, PlanFn]) -> dict[tuple[int, str], dict]:
    """(cap, kind) -> success, completeness, steps, averaged over the split's tasks."""
    rows: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cap in caps:
        env = PlannerEnv(env_id, max_episode_steps=cap)
        for i in range(env.splits()[split]):
            for kind, make in kinds.items():
                _, info = env.reset(seed=i, options={"split": split, "task_index": i})
                recs = rooms_receptacles(env.pe.observe("executor")["admissible_commands"])
                plan = make(info, recs, i)
                text = f"<plan>{format_plan(plan)}</plan>" if plan else "I am not sure."
                _, _, _, _, info = env.step(text)  # the executor plays the plan out (or the step cap ends it)
                r = rows[(cap, kind)]
                r["success"].append(100.0 * info["won"])
                r["completeness"].append(info["completeness"])
                r["steps"].append(info["executor_steps"])
        env.close()
        print(f"[plan_matters] {env_id} cap {cap}: done", file=sys.stderr, flush=True)
    return {key: {k: mean(v) for k, v in r.items()} | {"n": len(r["success"])} for key, r in rows.items()}


def table(env_id: str, results: dict[tuple[int, str], dict], caps: Sequence[int], kinds: Sequence[str]) -> str:
    head = "| plan | " + " | ".join(f"success @{c}" for c in caps) + f" | completeness @{caps[-1]} | executor steps @{caps[-1]} |"
    lines = [f"**{env_id}**, valid_unseen ({results[(caps[0], kinds[0])]['n']} tasks); success in %, "
             "@N = step cap N (the planner's turn counts as one step)", "", head,
             "|---|" + "---:|" * (len(caps) + 2)]
    for kind in kinds:
        cells = [f"{results[(c, kind)]['success']:.1f}" for c in caps]
        last = results[(caps[-1], kind)]
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {last['completeness']:.2f} | {last['steps']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="PilotALFWorld-v0,PilotALFWorldSmall-v0")
    parser.add_argument("--split", default="valid_unseen")
    parser.add_argument("--caps", default="15,20,30,50", help="step caps (comma-separated)")
    parser.add_argument("--prior-tasks", type=int, default=2000, help="train tasks the prior planner counts")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    caps = [int(c) for c in args.caps.split(",")]
    start = time.perf_counter()
    parts = []
    for env_id in args.envs.split(","):
        kinds = plan_kinds(search_prior(env_id, args.prior_tasks))
        results = measure(env_id, args.split, caps, kinds)
        parts.append(table(env_id, results, caps, list(kinds)))
    text = "\n\n".join(parts) + (f"\n\nMeasured by `python examples/plan_matters.py` ({time.perf_counter() - start:.0f} s "
                                 f"on one core; prior from the first {args.prior_tasks} train tasks).")
    print(text)
    if args.write_docs:
        write_marked(ROOT / "docs" / "planning.md", MARK_START, MARK_END, text)
    return text


if __name__ == "__main__":
    main()
