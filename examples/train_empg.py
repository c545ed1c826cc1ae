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

from pathlib import Path

from _compare import Arm, compare_main
from recipes import GRPO_RECIPE, budgeted

QUICK = dict(sft_episodes=40, sft_steps=40, sft_warmup_steps=5, max_turns=6, eval_max_turns=6, eval_tasks=12,
             eval_samples=1, num_envs=16, tiny_corpus_episodes=60, tasks_per_iteration=2)


def default_budget(quick: bool) -> int:
    """The GRPO example's most env steps: iterations x episodes per iteration x turn cap."""
    r = GRPO_RECIPE
    return 300 if quick else r["iterations"] * r["tasks_per_iteration"] * r["group_size"] * r["max_turns"]


def _builder(method: str):
    def build(seed: int, out: Path, budget: int, quick: bool):
        from trainers.empg import EMPGConfig, EMPGTrainer
        from trainers.grpo import GRPOConfig, GRPOTrainer

        config_cls, trainer_cls = {"grpo": (GRPOConfig, GRPOTrainer), "empg": (EMPGConfig, EMPGTrainer)}[method]
        kwargs = {**GRPO_RECIPE, **(QUICK if quick else {}), "seed": seed, "output_dir": str(out),
                  "iterations": 100_000, "save_every": 0, "tensorboard": False, "progress_bar": False,
                  "save_final_model": False, "advantage": method}
        return budgeted(trainer_cls, budget)(config_cls(**kwargs))

    return build


ARMS = (Arm("grpo", "GRPO", _builder("grpo")), Arm("empg", "GRPO+EMPG", _builder("empg")))

if __name__ == "__main__":
    compare_main(__doc__, ARMS, default_out="runs/empg_example", default_budget=default_budget, mark="empg",
                 image="empg_curves.png", curves=("env/success_rate", "policy/entropy", "adv/g_max"),
                 pages=("docs/results.md", "docs/trainers/empg.md"))
