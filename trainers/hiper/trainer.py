"""HiPER: hierarchical plan-execute RL with hierarchical advantage estimation (arXiv 2602.16165).

Each turn the policy answers ``<switch>KEEP|SWITCH</switch><subgoal>..</subgoal><action>..</action>``.
A segment starts at turn 0 and at every ``SWITCH`` (:mod:`trainers.hiper.structure`). One iteration:

1. **collect** batched rollouts in the ``hiper`` format (the prompt shows the subgoal in effect);
2. **score**: env reward + HiPER's shaping (invalid turn, KEEP penalty, subgoal changed on KEEP);
3. **values**: a separate critic (:class:`~trainers.core.value.ValueModel`, a copy of the policy trunk,
   three linear heads) reads V_H and V_b after the last prompt token (the start of the turn) and V_L right
   after the turn's ``</subgoal>`` (:mod:`trainers.hiper.tokens`);
4. **advantages**: the registered ``hae`` estimator gives A^L (GAE inside segments), A^H (semi-Markov GAE
   over segments, on segment-start turns) and A^b (switch return minus V_b); each is standardised
   separately over the batch (A^H over segment-start turns only);
5. **tokens**: A^L on the ``<action>`` span of every turn, A^H on the ``<subgoal>`` span of segment-start
   turns, A^b on the ``<switch>`` span of every turn; every other token has weight 0;
6. **update**: PPO clip + ``kl_coef`` x low-variance KL (token-mean over the trained tokens), then the
   critic's clipped value loss summed over the three heads (targets R^H = A^H + V_H, R^L = A^L + V_L,
   G^b), each a mean over its own turns.

Everything else (SFT warm start in the ``hiper`` format, evaluation, checkpoints, logging) is the shared loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch, standardise
from trainers.core.losses import value_clip_loss
from trainers.core.registry import ADVANTAGES
from trainers.core.rollout import turn_batch
from trainers.core.trainer import RLBatch
from trainers.hiper.config import HiPERConfig
from trainers.hiper.structure import ShapedTurns, parse_hiper, shape
from trainers.hiper.tokens import batch_layout
from trainers.ppo.trainer import PPOTrainer

__all__ = ["HEADS", "HiPERTrainer"]

HEADS: tuple[str, ...] = ("high", "low", "switch")
"""Critic head order: V_H, V_L, V_b."""
_H, _L, _B = range(3)
_NEEDED = ("adv_high", "ret_high", "adv_switch", "ret_switch", "high_mask")


class HiPERTrainer(PPOTrainer):
    """PPO with a three-head critic and HAE on the shared loop (hooks only; the loop is the base one)."""

    config_class = HiPERConfig
    name = "hiper"
    num_value_heads = 3
    config: HiPERConfig

    def advantage_config(self) -> AdvantageConfig:
        cfg = self.config
        return AdvantageConfig(gamma=cfg.gamma, lam=cfg.lam, lam_high=cfg.lam_high, norm_by_std=cfg.norm_by_std)

    # ------------------------------------------------------------------------------- batch + score
    def make_batch(self, trajs: list[Any]) -> RLBatch:
        """The base batch plus, per turn, the tag masks and V_L's read position."""
        batch = super().make_batch(trajs)
        width = batch.old_logprobs.shape[1]
        masks, low = batch_layout(self.policy.tokenizer, batch.response_ids, width,
                                  include_tags=self.config.train_tag_tokens)
        batch.extras.update({f"mask_{k}": v & batch.mask for k, v in masks.items()})
        batch.extras["low_index"] = low
        return batch

    def shaped(self, batch: RLBatch) -> list[ShapedTurns]:
        """Segment boundaries and shaping terms of every trajectory of the batch."""
        out = []
        for traj in batch.trajectories:
            parsed = [parse_hiper(t.response_text) for t in traj.turns]
            valid = [t.action_valid and t.format_ok for t in traj.turns]
            out.append(shape(parsed, valid, self.config.shaping()))
        return out

    def score(self, batch: RLBatch) -> Tensor:
        """Env reward (minus ``format_penalty``) + HiPER's shaping; segment starts go to ``extras``."""
        base = super().score(batch)
        shaped = self.shaped(batch)
        flat = {name: [x for s in shaped for x in getattr(s, name)]
                for name in ("seg_start", "keep", "subgoal_changed", "invalid", "keep_penalty", "change_penalty")}
        for name in ("invalid", "keep_penalty", "change_penalty"):
            batch.extras[f"shaping_{name}"] = torch.tensor(flat[name], dtype=torch.float32)
        batch.extras["seg_start"] = torch.tensor(flat["seg_start"], dtype=torch.bool)
        batch.extras["subgoal_changed"] = torch.tensor(flat["subgoal_changed"], dtype=torch.bool)
        batch.extras["switch_missing"] = torch.tensor(
            [parse_hiper(t.response_text).switch is None for t in batch.turns], dtype=torch.bool)
        shaping = sum(batch.extras[f"shaping_{n}"] for n in ("invalid", "keep_penalty", "change_penalty"))
        return base + shaping

    # --------------------------------------------------------------------------------- critic
    def critic_heads(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        low_index: Tensor,
        *,
        grad: bool = False,
        module: Any = None,
    ) -> Tensor:
        """``[B, 3]``: V_H and V_b at the turn's start (critic index 0), V_L at ``low_index``.

        Responses are cut after the V_L position (a causal critic never looks ahead), so the critic only
        reads the prompt and the switch/subgoal part of each response.
        """
        net = module or self.critic
        cut = [list(r[: int(k)]) for r, k in zip(response_ids, low_index.tolist(), strict=True)]

        def read(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], idx: Tensor) -> Tensor:
            with self.accelerator.autocast():
                values, _ = net(prompts, responses)
            rows = torch.arange(len(prompts), device=values.device)
            start = values[:, 0]
            low = values[rows, idx.to(values.device), _L]
            return torch.stack([start[:, _H], low, start[:, _B]], dim=-1)

        if grad:
            return read(prompt_ids, cut, low_index)
        out = torch.zeros(len(prompt_ids), 3)
        with torch.no_grad():
            for mb in self.policy.iter_micro_batches(prompt_ids, cut, self.config.micro_batch_tokens):
                out[mb.indices] = read(mb.prompt_ids, mb.response_ids, low_index[mb.indices]).float().cpu()
        return out

    def advantage_batch(self, batch: RLBatch) -> TurnBatch:
        """Rewards, segment starts and the three heads' values of every turn."""
        v = self.critic_heads(batch.prompt_ids, batch.response_ids, batch.extras["low_index"])
        for k, name in enumerate(HEADS):
            batch.extras[f"v_{name}"] = v[:, k].clone()
        batch.extras["values"] = batch.extras["v_low"]  # PPOTrainer's metrics read V_L as "the" value
        return turn_batch(batch.trajectories, batch.rewards, with_state_keys=False,
                          seg_start=batch.extras["seg_start"], v_high=v[:, _H], v_low=v[:, _L], v_switch=v[:, _B])

    def compute_advantages(self, batch: RLBatch) -> AdvantageOutput:
        """The registered estimator (``hae``); A^L, A^H, A^b standardised separately (raw ones kept)."""
        cfg = self.config
        out = ADVANTAGES.get(cfg.advantage)(self.advantage_batch(batch), self.advantage_config())
        missing = [k for k in _NEEDED if k not in out.extras]
        if missing or out.returns is None:
            raise ValueError(f"advantage {cfg.advantage!r} must return value targets and extras {list(_NEEDED)} "
                             f"(missing {missing}); use 'hae'")
        low, high, switch = out.advantages, out.extras["adv_high"], out.extras["adv_switch"]
        high_mask = out.extras["high_mask"] > 0
        raw = {"adv_low_raw": low, "adv_high_raw": high, "adv_switch_raw": switch}
        if cfg.normalize_advantages:
            low, high, switch = standardise(low), standardise(high, high_mask), standardise(switch)
        return AdvantageOutput(low, out.returns, {**out.extras, **raw, "adv_high": high, "adv_switch": switch})

    # --------------------------------------------------------------------------------- tokens
    def _high_rows(self, batch: RLBatch) -> Tensor:
        return batch.adv_output.extras["high_mask"] > 0

    def token_advantages(self, batch: RLBatch, adv: AdvantageOutput) -> Tensor:
        """A^L on action tokens, A^H on subgoal tokens of segment-start turns, A^b on switch tokens."""
        ex = batch.extras
        high = ex["mask_subgoal"] & self._high_rows(batch)[:, None]
        return (adv.advantages.float()[:, None] * ex["mask_action"]
                + adv.extras["adv_high"].float()[:, None] * high
                + adv.extras["adv_switch"].float()[:, None] * ex["mask_switch"])

    def token_weights(self, batch: RLBatch) -> Tensor:
        """1 on the trained spans (disjoint), 0 on everything else."""
        ex = batch.extras
        return (ex["mask_action"] | (ex["mask_subgoal"] & self._high_rows(batch)[:, None]) | ex["mask_switch"]).float()

    # --------------------------------------------------------------------------------- update
    def update_critic(self, batch: RLBatch, rows: Sequence[int]) -> dict[str, float]:
        """One critic step on ``rows``: clipped value loss per head, each a mean over its own turns
        (V_H: segment-start turns; V_L, V_b: all turns), weighted by ``value_coef_*`` and summed."""
        cfg = self.config
        ex, adv = batch.extras, batch.adv_output
        procs = self.accelerator.num_processes
        v_old = torch.stack([ex["v_high"], ex["v_low"], ex["v_switch"]], dim=-1)
        targets = torch.stack([adv.extras["ret_high"], adv.returns, adv.extras["ret_switch"]], dim=-1).float()
        masks = torch.stack([self._high_rows(batch), torch.ones(len(batch), dtype=torch.bool),
                             torch.ones(len(batch), dtype=torch.bool)], dim=-1)
        coefs = (cfg.value_coef_high, cfg.value_coef_low, cfg.value_coef_switch)
        counts = [self.global_sum(float(masks[rows, k].sum())) for k in range(3)]
        acc = {f"losses/value_{n}{s}": 0.0 for n in HEADS for s in ("", "_clipfrac")}  # same keys everywhere
        cut = [batch.response_ids[i][: int(ex["low_index"][i])] for i in rows]
        prompts = [batch.prompt_ids[i] for i in rows]

        def losses() -> Iterable[Tensor]:
            for mb in self.policy.iter_micro_batches(prompts, cut, cfg.micro_batch_tokens):
                idx = [rows[i] for i in mb.indices]
                v = self.critic_heads(mb.prompt_ids, mb.response_ids, ex["low_index"][idx], grad=True,
                                      module=self.critic_module)
                dev = v.device
                total = v.sum() * 0.0  # keeps the graph even if a head has no turns here
                for k, name in enumerate(HEADS):
                    m = masks[idx, k].to(dev)
                    if counts[k] == 0 or not bool(m.any()):
                        continue
                    share = float(m.sum()) / counts[k] * procs
                    loss, st = value_clip_loss(v[:, k], v_old[idx, k].to(dev), targets[idx, k].to(dev), m,
                                               clip=cfg.value_clip)
                    total = total + coefs[k] * share * loss
                    acc[f"losses/value_{name}"] += float(loss.detach()) * share
                    acc[f"losses/value_{name}_clipfrac"] += float(st["clipfrac"]) * share
                yield total

        self.backward_micro_batches(self.critic_module, losses(), self._critic_sync_loss)
        acc["value/grad_norm"] = self.clip_and_step(self.critic_optimizer, list(self.critic.parameters()))
        acc["losses/value"] = sum(coefs[k] * acc[f"losses/value_{n}"] for k, n in enumerate(HEADS))
        return acc

    # ------------------------------------------------------------------------------------ log
    def metrics(self, batch: RLBatch, stats: dict[str, float]) -> dict[str, float]:
        m = super().metrics(batch, stats)
        ex, adv = batch.extras, batch.adv_output
        n_traj = max(1, len(batch.trajectories))
        starts = ex["seg_start"]
        later = batch.turn_idx > 0
        segments = float(starts.sum())
        m["hiper/segments_per_episode"] = segments / n_traj
        m["hiper/segment_length"] = len(batch) / max(1.0, segments)
        m["hiper/switch_rate"] = float(starts[later].float().mean()) if bool(later.any()) else 0.0
        m["hiper/switch_missing_rate"] = float(ex["switch_missing"].float().mean())
        keep = later & ~starts
        m["hiper/subgoal_changed_on_keep"] = float(ex["subgoal_changed"][keep].float().mean()) if bool(keep.any()) else 0.0
        for name in ("invalid", "keep_penalty", "change_penalty"):
            m[f"reward/shaping_{name}"] = float(ex[f"shaping_{name}"].sum()) / n_traj
        targets = {"high": adv.extras["ret_high"], "low": adv.returns, "switch": adv.extras["ret_switch"]}
        rows = {"high": self._high_rows(batch), "low": slice(None), "switch": slice(None)}
        for name in HEADS:
            v, ret = ex[f"v_{name}"][rows[name]], targets[name][rows[name]].float()
            var = float(ret.var()) if ret.numel() > 1 else 0.0
            m[f"value/{name}_mean"] = float(v.mean()) if v.numel() else 0.0
            m[f"value/{name}_explained_variance"] = 1.0 - float((ret - v).var()) / var if var > 1e-8 else 0.0
        for name in HEADS:
            raw = adv.extras[f"adv_{name}_raw"][rows[name]]
            m[f"adv/{name}_raw_std"] = float(raw.std()) if raw.numel() > 1 else 0.0
        w = batch.weights
        for tag in ("switch", "subgoal", "action"):
            m[f"policy/trained_{tag}_tokens"] = float((ex[f"mask_{tag}"].float() * w).sum()) / max(1, len(batch))
        m["policy/trained_token_frac"] = float(w.sum()) / max(1.0, float(batch.mask.sum()))
        return m
