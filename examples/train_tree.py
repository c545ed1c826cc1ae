"""Tree rollouts vs independent rollouts for GiGPO on small-scene PilotALFWorld, at equal env steps.

    python examples/train_tree.py --seeds 0,1,2 --parallel 2     # the measured run of docs/results.md
    python examples/train_tree.py --quick                        # smoke run (~3 min)
    python examples/train_tree.py --report --write-docs          # table + plot from the runs already in --out

Both arms are the GRPO example (``GRPO_RECIPE`` with GiGPO's advantage): the ``natural`` arm plays each group's
8 episodes independently, so GiGPO's step groups are the turns that happen to act in the same state
(``state_hash``); the ``tree`` arm branches every running episode of a group 2 ways before turns 2, 5 and 8 from an
exact env snapshot (``tree_turns=(2, 5, 8)``: 1 -> 2 -> 4 -> 8 episodes), so each branch point is a step group of
2 in one exact state by construction, and the shared prefixes cost their env steps once. For a seed both arms build
the same tiny model and run the same SFT (identical step-0 evaluations), then train until the same env-step budget
(whole iterations); the tree arm therefore runs more iterations.
"""

from __future__ import annotations

from pathlib import Path

from _compare import Arm, compare_main
from recipes import GRPO_ADVANTAGE, GRPO_RECIPE, budgeted

QUICK = dict(sft_episodes=40, sft_steps=40, sft_warmup_steps=5, max_turns=10, eval_max_turns=10, eval_tasks=12,
             eval_samples=1, num_envs=16, tiny_corpus_episodes=60, tasks_per_iteration=2)
TREE = {"tree_turns": (2, 5, 8), "tree_width": 2}


def default_budget(quick: bool) -> int:
    """The GRPO example's most env steps: iterations x episodes per iteration x turn cap."""
    r = GRPO_RECIPE
    return 500 if quick else r["iterations"] * r["tasks_per_iteration"] * r["group_size"] * r["max_turns"]


def _builder(extra: dict):
    def build(seed: int, out: Path, budget: int, quick: bool):
        from trainers.grpo import GRPOConfig, GRPOTrainer

        kwargs = {**GRPO_RECIPE, **(QUICK if quick else {}), **extra, "seed": seed, "output_dir": str(out),
                  "iterations": 100_000, "save_every": 0, "tensorboard": False, "progress_bar": False,
                  "save_final_model": False, "advantage": GRPO_ADVANTAGE}
        return budgeted(GRPOTrainer, budget)(GRPOConfig(**kwargs))

    return build


ARMS = (Arm("natural", "GiGPO, independent rollouts", _builder({})),
        Arm("tree", "GiGPO, tree rollouts", _builder(TREE)))

if __name__ == "__main__":
    compare_main(__doc__, ARMS, default_out="runs/tree_example", default_budget=default_budget, mark="tree",
                 image="tree_curves.png", curves=("env/success_rate", "adv/anchor_shared_frac", "env/progress"))
