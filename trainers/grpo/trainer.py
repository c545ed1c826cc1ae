"""GRPO for multi-turn agents.

Each iteration samples ``tasks_per_iteration`` tasks and plays each ``group_size`` times (same seed, same
task). A trajectory's return R_i = sum_t r_t (env rewards: success + progress shaping - invalid penalty) is
normalised within its group, A_i = (R_i - mean_G R) / (std_G R + 1e-6), and broadcast to every policy token
of every turn of the trajectory (each turn is its own sample with its short-history prompt). The loss is PPO's
clipped surrogate (token-mean) plus ``kl_coef`` times the low-variance KL to the initial policy.

Everything is the shared loop of :class:`trainers.core.trainer.Trainer`; GRPO only picks the defaults
(:class:`~trainers.grpo.config.GRPOConfig`). The estimator is looked up by name, so ``--advantage rloo`` or
``--advantage gigpo`` run RLOO or GiGPO with the same trainer.
"""

from __future__ import annotations

from trainers.core.trainer import Trainer
from trainers.grpo.config import GRPOConfig

__all__ = ["GRPOTrainer"]


class GRPOTrainer(Trainer):
    """Group-relative policy optimisation: the base loop with :class:`GRPOConfig`."""

    config_class = GRPOConfig
    name = "grpo"
