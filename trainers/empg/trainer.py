"""EMPG: GRPO with entropy-modulated advantages.

The generic rollout records each turn's mean token entropy (``Turn.entropy``, from the logits sampling already
computes). This trainer hands it to the ``empg`` estimator (:mod:`trainers.empg.advantage`) as a per-turn extra and
passes EMPG's coefficients; everything else - collect, PPO clip, KL, update - is GRPO's loop.
"""

from __future__ import annotations

import torch

from trainers.core.advantages import TurnBatch
from trainers.core.rollout import turn_batch
from trainers.core.trainer import RLBatch
from trainers.empg.advantage import ENTROPY, EMPGAdvantageConfig
from trainers.empg.config import EMPGConfig
from trainers.grpo.trainer import GRPOTrainer

__all__ = ["EMPGTrainer"]


class EMPGTrainer(GRPOTrainer):
    """GRPO whose advantages come from the ``empg`` estimator (the config's ``advantage``)."""

    config_class = EMPGConfig
    name = "empg"
    config: EMPGConfig

    def advantage_config(self) -> EMPGAdvantageConfig:
        cfg = self.config
        return EMPGAdvantageConfig(gamma=cfg.gamma, lam=cfg.lam, norm_by_std=cfg.norm_by_std, base=cfg.empg_base,
                                   k=cfg.empg_k, k_next=cfg.empg_k_next, zeta=cfg.empg_zeta)

    def advantage_batch(self, batch: RLBatch) -> TurnBatch:
        """The generic estimator input plus every turn's mean token entropy."""
        entropy = torch.tensor([t.entropy for t in batch.turns], dtype=torch.float32)
        return turn_batch(batch.trajectories, batch.rewards, extras={ENTROPY: entropy})
