"""HiPER: hierarchical plan-execute RL with hierarchical advantage estimation (arXiv 2602.16165).

Each turn the policy answers ``<switch>KEEP|SWITCH</switch><subgoal>..</subgoal><action>..</action>``.
A segment starts at turn 0 and at every ``SWITCH`` (:mod:`trainers.hiper.structure`). One iteration:

1. **collect** batched rollouts in the ``hiper`` format (the prompt shows the subgoal in effect);
2. **score**: env reward + HiPER's shaping (invalid turn, KEEP penalty, subgoal changed on KEEP);
3. **values**: a separate critic (:class:`~trainers.core.value.ValueModel`, a copy of the policy trunk,
   three linear heads) reads V_H and V_b after the last prompt token (the start of the turn) and V_L right
   after the turn's ``</subgoal>`` (:mod:`trainers.hiper.tokens`);
4. **advantages**: the ``hae`` estimator (:mod:`trainers.hiper.hae`) gives A^L (GAE inside segments), A^H
   (semi-Markov GAE over segments, on segment-start turns) and A^b (switch return minus V_b); each is
   standardised separately over the batch (A^H over segment-start turns only);
5. **tokens**: A^L on the ``<action>`` span of every turn, A^H on the ``<subgoal>`` span of segment-start
   turns, A^b on the ``<switch>`` span of every turn; every other token has weight 0;
6. **update**: PPO clip + ``kl_coef`` x low-variance KL (token-mean over the trained tokens), then the
   critic's clipped value loss summed over the three heads (targets R^H = A^H + V_H, R^L = A^L + V_L,
   G^b), each a mean over its own turns.

Everything else (SFT warm start in the ``hiper`` format, evaluation, checkpoints, logging) is the shared loop; the
SFT expert writes task steps as subgoals (:mod:`trainers.hiper.steps`, ``sft_segments``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from trainers.core.advantages import AdvantageOutput, TurnBatch, standardise
from trainers.core.losses import value_clip_loss
from trainers.core.registry import ADVANTAGES
from trainers.core.rollout import RolloutStats, turn_batch
from trainers.core.trainer import RLBatch, UpdateStats
from trainers.hiper.config import HiPERConfig
from trainers.hiper.hae import (
    ADV_HIGH,
    ADV_SWITCH,
    HIGH_MASK,
    RET_HIGH,
    RET_SWITCH,
    SEG_START,
    V_HIGH,
    V_LOW,
    V_SWITCH,
    HAEConfig,
)
from trainers.hiper.steps import TaskStepInfo
from trainers.hiper.structure import ShapedTurns, parse_hiper, segment_lengths, segment_stats, shape
from trainers.hiper.tokens import batch_layout
from trainers.ppo.trainer import PPOTrainer

__all__ = ["HEADS", "HiPERTrainer"]

HEADS: tuple[str, ...] = ("high", "low", "switch")
"""Critic head order: V_H, V_L, V_b."""
_H, _L, _B = range(3)
_NEEDED = (ADV_HIGH, RET_HIGH, ADV_SWITCH, RET_SWITCH, HIGH_MASK)
VALUE_KEYS = {"high": V_HIGH, "low": V_LOW, "switch": V_SWITCH}
"""``RLBatch.extras`` (and ``TurnBatch.extras``) keys of the three heads' values, per turn."""
MASKS = {tag: f"hiper/mask_{tag}" for tag in ("switch", "subgoal", "action")}
"""``RLBatch.extras``: [N, T] bool, the policy tokens of each tag's span."""
LOW_INDEX = "hiper/low_index"
"""``RLBatch.extras``: long [N], the response position V_L is read at (right after ``</subgoal>``)."""
SHAPING = {name: f"hiper/shaping_{name}" for name in ("invalid", "keep_penalty", "change_penalty")}
"""``RLBatch.extras``: float [N], each of HiPER's shaping terms per turn."""
SUBGOAL_CHANGED = "hiper/subgoal_changed"
"""``RLBatch.extras``: bool [N], the subgoal text changed on a KEEP turn."""
SWITCH_MISSING = "hiper/switch_missing"
"""``RLBatch.extras``: bool [N], the turn wrote no switch."""
RAW = {name: f"hiper/adv_{name}_raw" for name in HEADS}
"""``AdvantageOutput.extras``: each head's advantage before standardisation."""


class HiPERTrainer(PPOTrainer):
    """PPO with a three-head critic and HAE on the shared loop (hooks only; the loop is the base one)."""

    config_class = HiPERConfig
    name = "hiper"
    num_value_heads = 3
    config: HiPERConfig

    def sft_env(self) -> gym.Env:
        """The SFT expert's env; with ``sft_segments="task_steps"`` its milestones read as task steps
        (:class:`~trainers.hiper.steps.TaskStepInfo`), so the expert keeps a subgoal over a step's navigation."""
        env = super().sft_env()
        return TaskStepInfo(env) if self.config.sft_segments == "task_steps" else env

    def advantage_config(self) -> HAEConfig:
        cfg = self.config
        return HAEConfig(gamma=cfg.gamma, lam=cfg.lam, lam_high=cfg.lam_high, norm_by_std=cfg.norm_by_std)

    # ------------------------------------------------------------------------------- batch + score
    def make_batch(self, trajs: list[Any]) -> RLBatch:
        """The base batch plus, per turn, the tag masks and V_L's read position."""
        batch = super().make_batch(trajs)
        width = batch.old_logprobs.shape[1]
        masks, low = batch_layout(self.policy.tokenizer, batch.response_ids, width,
                                  include_tags=self.config.train_tag_tokens)
        batch.extras.update({MASKS[k]: v & batch.mask for k, v in masks.items()})
        batch.extras[LOW_INDEX] = low
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
        for name, key in SHAPING.items():
            batch.extras[key] = torch.tensor(flat[name], dtype=torch.float32)
        batch.extras[SEG_START] = torch.tensor(flat["seg_start"], dtype=torch.bool)
        batch.extras[SUBGOAL_CHANGED] = torch.tensor(flat["subgoal_changed"], dtype=torch.bool)
        batch.extras[SWITCH_MISSING] = torch.tensor(
            [parse_hiper(t.response_text).switch is None for t in batch.turns], dtype=torch.bool)
        shaping = sum(batch.extras[key] for key in SHAPING.values())
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
        v = self.critic_heads(batch.prompt_ids, batch.response_ids, batch.extras[LOW_INDEX])
        for k, name in enumerate(HEADS):
            batch.extras[VALUE_KEYS[name]] = v[:, k].clone()
        return turn_batch(batch.trajectories, batch.rewards, with_state_keys=False,
                          extras={SEG_START: batch.extras[SEG_START], V_HIGH: v[:, _H], V_LOW: v[:, _L],
                                  V_SWITCH: v[:, _B]})

    def compute_advantages(self, batch: RLBatch) -> AdvantageOutput:
        """The registered estimator (``hae``); A^L, A^H, A^b standardised separately (raw ones kept)."""
        cfg = self.config
        out = ADVANTAGES.get(cfg.advantage)(self.advantage_batch(batch), self.advantage_config())
        missing = [k for k in _NEEDED if k not in out.extras]
        if missing or out.returns is None:
            raise ValueError(f"advantage {cfg.advantage!r} must return value targets and extras {list(_NEEDED)} "
                             f"(missing {missing}); use 'hae'")
        low, high, switch = out.advantages, out.extras[ADV_HIGH], out.extras[ADV_SWITCH]
        high_mask = out.extras[HIGH_MASK] > 0
        raw = {RAW["low"]: low, RAW["high"]: high, RAW["switch"]: switch}
        if cfg.normalize_advantages:
            low, high, switch = standardise(low), standardise(high, high_mask), standardise(switch)
        return AdvantageOutput(low, out.returns, {**out.extras, **raw, ADV_HIGH: high, ADV_SWITCH: switch})

    # --------------------------------------------------------------------------------- tokens
    def _high_rows(self, batch: RLBatch) -> Tensor:
        return batch.adv_output.extras[HIGH_MASK] > 0

    def token_advantages(self, batch: RLBatch, adv: AdvantageOutput) -> Tensor:
        """A^L on action tokens, A^H on subgoal tokens of segment-start turns, A^b on switch tokens."""
        ex = batch.extras
        high = ex[MASKS["subgoal"]] & self._high_rows(batch)[:, None]
        return (adv.advantages.float()[:, None] * ex[MASKS["action"]]
                + adv.extras[ADV_HIGH].float()[:, None] * high
                + adv.extras[ADV_SWITCH].float()[:, None] * ex[MASKS["switch"]])

    def token_weights(self, batch: RLBatch) -> Tensor:
        """1 on the trained spans (disjoint), 0 on everything else."""
        ex = batch.extras
        return (ex[MASKS["action"]] | (ex[MASKS["subgoal"]] & self._high_rows(batch)[:, None])
                | ex[MASKS["switch"]]).float()

    # --------------------------------------------------------------------------------- update
    def update_critic(self, batch: RLBatch, rows: Sequence[int]) -> dict[str, float]:
        """One critic step on ``rows``: clipped value loss per head, each a mean over its own turns
        (V_H: segment-start turns; V_L, V_b: all turns), weighted by ``value_coef_*`` and summed."""
        cfg = self.config
        ex, adv = batch.extras, batch.adv_output
        procs = self.accelerator.num_processes
        v_old = torch.stack([ex[VALUE_KEYS[name]] for name in HEADS], dim=-1)
        targets = torch.stack([adv.extras[RET_HIGH], adv.returns, adv.extras[RET_SWITCH]], dim=-1).float()
        masks = torch.stack([self._high_rows(batch), torch.ones(len(batch), dtype=torch.bool),
                             torch.ones(len(batch), dtype=torch.bool)], dim=-1)
        coefs = (cfg.value_coef_high, cfg.value_coef_low, cfg.value_coef_switch)
        counts = [self.global_sum(float(masks[rows, k].sum())) for k in range(3)]
        cut = [batch.response_ids[i][: int(ex[LOW_INDEX][i])] for i in rows]
        prompts = [batch.prompt_ids[i] for i in rows]

        def parts() -> Iterator[tuple[Tensor, dict[str, float]]]:
            for mb in self.policy.iter_micro_batches(prompts, cut, cfg.micro_batch_tokens):
                idx = [rows[i] for i in mb.indices]
                v = self.critic_heads(mb.prompt_ids, mb.response_ids, ex[LOW_INDEX][idx], grad=True,
                                      module=self.critic_module)
                dev = v.device
                total = v.sum() * 0.0  # keeps the graph even if a head has no turns here
                stats: dict[str, float] = {}
                for k, name in enumerate(HEADS):
                    m = masks[idx, k].to(dev)
                    if counts[k] == 0 or not bool(m.any()):
                        continue
                    share = float(m.sum()) / counts[k] * procs
                    loss, st = value_clip_loss(v[:, k], v_old[idx, k].to(dev), targets[idx, k].to(dev), m,
                                               clip=cfg.value_clip)
                    total = total + coefs[k] * share * loss
                    stats[f"losses/value_{name}"] = float(loss.detach()) * share
                    stats[f"losses/value_{name}_clipfrac"] = float(st["clipfrac"]) * share
                yield total, stats

        acc = {f"losses/value_{n}{s}": 0.0 for n in HEADS for s in ("", "_clipfrac")}  # same keys everywhere
        for key, v in self.optimizer_step(self.critic_module, self.critic_optimizer, list(self.critic.parameters()),
                                          parts(), self._critic_sync_loss, norm_key="value/grad_norm").items():
            acc[key] = acc[key] + v if key in acc else v
        acc["losses/value"] = sum(coefs[k] * acc[f"losses/value_{n}"] for k, n in enumerate(HEADS))
        return acc

    # ------------------------------------------------------------------------------------ log
    def turn_values(self, batch: RLBatch) -> Tensor:
        """V_L: the ``value/*`` metrics of PPO compare the low-level values with R^L."""
        return batch.extras.need(V_LOW, "HiPER's value metrics")

    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        m = super().metrics(batch, rollout, update)
        ex, adv = batch.extras, batch.adv_output
        n_traj = max(1, len(batch.trajectories))
        starts = ex[SEG_START]
        later = batch.turn_idx > 0
        segments = float(starts.sum())
        m["hiper/segments_per_episode"] = segments / n_traj
        m["hiper/segment_length"] = len(batch) / max(1.0, segments)
        flags, lengths = starts.tolist(), []
        at = 0
        for traj in batch.trajectories:
            lengths += segment_lengths(flags[at : at + len(traj.turns)])
            at += len(traj.turns)
        stats = segment_stats(lengths)
        for key in ("median", "share_multi", "turn_share_multi"):
            m[f"hiper/segment_length_{key}"] = stats[key]
        m["hiper/switch_rate"] = float(starts[later].float().mean()) if bool(later.any()) else 0.0
        m["hiper/switch_missing_rate"] = float(ex[SWITCH_MISSING].float().mean())
        keep = later & ~starts
        m["hiper/subgoal_changed_on_keep"] = float(ex[SUBGOAL_CHANGED][keep].float().mean()) if bool(keep.any()) else 0.0
        for name, key in SHAPING.items():
            m[f"reward/shaping_{name}"] = float(ex[key].sum()) / n_traj
        targets = {"high": adv.extras[RET_HIGH], "low": adv.returns, "switch": adv.extras[RET_SWITCH]}
        rows = {"high": self._high_rows(batch), "low": slice(None), "switch": slice(None)}
        for name in HEADS:
            v, ret = ex[VALUE_KEYS[name]][rows[name]], targets[name][rows[name]].float()
            var = float(ret.var()) if ret.numel() > 1 else 0.0
            m[f"value/{name}_mean"] = float(v.mean()) if v.numel() else 0.0
            m[f"value/{name}_explained_variance"] = 1.0 - float((ret - v).var()) / var if var > 1e-8 else 0.0
        for name in HEADS:
            raw = adv.extras[RAW[name]][rows[name]]
            m[f"adv/{name}_raw_std"] = float(raw.std()) if raw.numel() > 1 else 0.0
        w = batch.weights
        for tag in ("switch", "subgoal", "action"):
            m[f"policy/trained_{tag}_tokens"] = float((ex[MASKS[tag]].float() * w).sum()) / max(1, len(batch))
        m["policy/trained_token_frac"] = float(w.sum()) / max(1.0, float(batch.mask.sum()))
        return m
