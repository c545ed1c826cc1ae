"""PPO with a separate critic and turn-level GAE.

The critic (:class:`~trainers.core.value.ValueModel`: a copy of the policy trunk + a value head) reads
V_t at the last prompt token of turn t. GAE runs over the turns of each trajectory:
delta_t = r_t + gamma V_{t+1} (1 - done_t) - V_t, A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}, with
V after a truncated trajectory's last turn read from the prompt that would have come next. A_t is
standardised over the batch and broadcast to every token of turn t's response; the actor loss is PPO's
clipped surrogate (+ KL), the critic loss the clipped value loss 0.5 max((V - R)^2, (V_clip - R)^2) with
R_t = A_t + V_t (before standardisation), each with its own optimizer.

HiPER subclasses this: more heads (``num_value_heads``), values read at tag positions
(:meth:`PPOTrainer.critic_values`), its own :meth:`PPOTrainer.critic_loss`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.core.advantages import TurnBatch
from trainers.core.losses import value_clip_loss
from trainers.core.rollout import RolloutStats, turn_batch
from trainers.core.trainer import RLBatch, Trainer, UpdateStats
from trainers.core.value import ValueModel, trunk_of
from trainers.ppo.config import PPOConfig

__all__ = ["VALUES", "PPOTrainer"]

VALUES = "ppo/values"
"""``RLBatch.extras``: float [N], V at each turn's prompt (the critic's estimate before the update)."""


class PPOTrainer(Trainer):
    """Actor-critic PPO on the shared loop."""

    config_class = PPOConfig
    name = "ppo"
    num_value_heads = 1

    # ------------------------------------------------------------------------------------- critic
    def setup(self) -> None:
        critic = ValueModel.from_policy(self.policy, self.num_value_heads)
        opt = torch.optim.AdamW(critic.parameters(), lr=self.config.critic_lr, weight_decay=self.config.weight_decay)
        self.critic = critic
        self.critic_module, self.critic_optimizer = self.accelerator.prepare(critic, opt)

    def on_warm_start_end(self) -> None:
        """The critic's trunk restarts from the warm-started policy's trunk."""
        super().on_warm_start_end()
        self.critic.trunk.load_state_dict(trunk_of(self.policy.model).state_dict())

    def critic_values(self, prompt_ids: Sequence[Sequence[int]], *, grad: bool = False, module: Any = None) -> Tensor:
        """V at the last prompt token, [B, num_value_heads] (micro-batched when ``grad`` is False)."""
        net = module or self.critic
        if grad:
            with self.accelerator.autocast():
                return net(prompt_ids)[0][:, 0]
        out = torch.zeros(len(prompt_ids), self.num_value_heads)
        empty = [[] for _ in prompt_ids]
        with torch.no_grad(), self.accelerator.autocast():
            for mb in self.policy.iter_micro_batches(prompt_ids, empty, self.config.micro_batch_tokens):
                out[mb.indices] = net(mb.prompt_ids)[0][:, 0].float().cpu()
        return out

    def advantage_batch(self, batch: RLBatch) -> TurnBatch:
        """Values at every turn's prompt, and after truncated trajectories (bootstrap)."""
        trajs = batch.trajectories
        cut = [t for t in trajs if t.next_prompt_ids is not None]
        v = self.critic_values(batch.prompt_ids + [t.next_prompt_ids for t in cut])[:, 0]
        values, boot = v[: len(batch)], dict(zip((t.traj_id for t in cut), v[len(batch) :].tolist(), strict=True))
        last = torch.zeros(len(batch))
        i = 0
        for t in trajs:
            i += len(t)
            last[i - 1] = boot.get(t.traj_id, 0.0)
        batch.extras[VALUES] = values
        return turn_batch(trajs, batch.rewards, values=values, last_values=last)

    def critic_loss(self, batch: RLBatch, rows: Sequence[int], module: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Clipped value loss of ``rows`` (per-turn mean)."""
        v = self.critic_values([batch.prompt_ids[i] for i in rows], grad=True, module=module)[:, 0]
        dev = v.device
        v_old = batch.extras.need(VALUES, "PPO's critic loss")[rows].to(dev)
        ret = batch.adv_output.returns[rows].to(dev)
        loss, st = value_clip_loss(v, v_old, ret, torch.ones_like(v, dtype=torch.bool), clip=self.config.value_clip)
        return loss, {"losses/value": loss.detach(), "losses/value_clipfrac": st["clipfrac"]}

    def update_critic(self, batch: RLBatch, rows: Sequence[int]) -> dict[str, float]:
        """One critic step on ``rows`` (micro-batched, :meth:`optimizer_step`): the clipped value loss, a mean
        over the rows."""
        cfg = self.config
        total = self.global_sum(float(len(rows)))
        prompts = [batch.prompt_ids[i] for i in rows]

        def parts() -> Iterator[tuple[Tensor, dict[str, float]]]:
            for mb in self.policy.iter_micro_batches(prompts, [[] for _ in rows], cfg.micro_batch_tokens):
                share = len(mb.indices) / total
                loss, stats = self.critic_loss(batch, [rows[i] for i in mb.indices], self.critic_module)
                procs = self.accelerator.num_processes
                yield loss * share * procs, {k: float(s) * share * procs for k, s in stats.items()}

        return self.optimizer_step(self.critic_module, self.critic_optimizer, list(self.critic.parameters()), parts(),
                                   self._critic_sync_loss, norm_key="value/grad_norm")

    def _critic_sync_loss(self) -> Tensor:
        with self.accelerator.autocast():
            return self.critic_module([[self.policy.pad_token_id]])[0].float().sum() * 0.0

    def policy_step(self, batch: RLBatch, rows: Sequence[int]) -> tuple[dict[str, float], int]:
        if self.step < self.config.critic_warmup:
            return {}, 0
        return super().policy_step(batch, rows)

    # --------------------------------------------------------------------------------- bookkeeping
    def turn_values(self, batch: RLBatch) -> Tensor:
        """The critic's per-turn value estimates that ``value/*`` metrics compare with the returns."""
        return batch.extras.need(VALUES, "PPO's value metrics")

    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        m = super().metrics(batch, rollout, update)
        values, ret = self.turn_values(batch), batch.adv_output.returns
        var = float(ret.var()) if ret.numel() > 1 else 0.0
        m["value/mean"] = float(values.mean())
        m["value/explained_variance"] = 1.0 - float((ret - values).var()) / var if var > 0 else 0.0
        return m

    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        return {**super().checkpoint_modules(), "critic": self.critic}

    def checkpoint_optimizers(self) -> dict[str, Any]:
        return {**super().checkpoint_optimizers(), "critic": self.critic_optimizer}
