"""EPO: entropy-regularised policy optimisation for multi-turn agents, as a plug-in on GRPO or PPO.

The loss of one iteration e (of E, the schedule length) is

    L = L_PG - c_H * ( mean_tok H - beta * w(e) * mean_tok P ) + c_KL * KL
    P = alpha * ( relu(kappa_l Hbar_tau - H) + relu(H - kappa_r Hbar_tau) )

with H the full-vocabulary entropy at every policy token of every turn, tau the token's turn index and
Hbar_tau the historical reference: the mean over past iterations (optionally the last ``epo_history_window``)
of the batch's token-mean entropy at turn index tau (:class:`~trainers.epo.entropy.EntropyHistory`). P is
the differentiable smoothing band (our decision, docs/methods.md "EPO": EPO's released indicator has no
gradient), so minimising L raises entropy below the band and lowers it above. w(e) is EPO's phase weight
(:func:`~trainers.epo.entropy.epo_phase_weight`). Everything else - collect, advantages, PPO clip, KL,
critic - is the base trainer's, untouched: the mixin only overrides hooks.

Bookkeeping per iteration, all of it per row in the batch's checked ``extras`` under this module's keys:
before the update, each row gets the reference of its turn index from the history of *past* iterations
(:data:`ENTROPY_REF`; rows whose turn index the history has never seen get no band penalty: there is no
reference yet, e.g. the whole first iteration); during the update, the entropy of each row is recorded the
first time the row is forwarded (:data:`ENTROPY_SUM`, :data:`ENTROPY_COUNT`, :data:`SEEN`; first epoch: the
rollout policy when ``mini_batches`` is 1); after the iteration the per-turn token-means (summed over
processes under DDP, so every replica holds the same history) enter the history. The phase weight is a
function of the iteration (:meth:`EPOMixin.phase_weight`). The history is part of the checkpoint, so a resumed
run continues exactly.

Logged (besides the base's metrics; ``losses/entropy_bonus`` = -c_H H and ``losses/epo_band`` =
c_H beta w P are loss terms): ``epo/entropy_turn_{k}`` (token-mean entropy at turn index k this iteration),
``epo/ref_turn_{k}`` (its historical reference used this iteration), ``epo/entropy`` (all policy tokens),
``epo/ref_entropy`` (token-weighted reference over the tokens that had one), ``epo/band_active_frac``
(tokens with a reference), ``epo/outside_band_frac`` (tokens outside the band, of all policy tokens),
``epo/band_penalty`` (P), ``epo/phase_weight`` (w(e)), ``epo/history_turns`` (turn indices in the history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.core.policy import TokenLogprobs
from trainers.core.rollout import RolloutStats
from trainers.core.trainer import RLBatch, Trainer, UpdateStats
from trainers.epo.config import EPOConfig
from trainers.epo.entropy import EntropyHistory, epo_band_penalty, epo_phase_weight
from trainers.grpo.trainer import GRPOTrainer
from trainers.ppo.trainer import PPOTrainer

__all__ = ["ENTROPY_COUNT", "ENTROPY_REF", "ENTROPY_SUM", "EPOGRPOTrainer", "EPOMixin", "EPOPPOTrainer", "SEEN",
           "TRAINERS", "make_trainer"]

ENTROPY_REF = "epo/entropy_ref"
"""``RLBatch.extras``: float [N], the historical reference Hbar of each row's turn index (NaN: none yet)."""
ENTROPY_SUM = "epo/entropy_sum"
"""``RLBatch.extras``: float64 [N], the sum of the row's token entropies at its first forward this iteration."""
ENTROPY_COUNT = "epo/entropy_count"
"""``RLBatch.extras``: float64 [N], how many trained tokens that sum covers."""
SEEN = "epo/seen_order"
"""``RLBatch.extras``: int64 [N], when the row was first forwarded this iteration (its entropy recorded then;
-1: not yet). Per-turn sums are accumulated in this order, as the rows were processed."""


class EPOMixin:
    """EPO's hooks; put it before a base trainer: ``class EPOGRPOTrainer(EPOMixin, GRPOTrainer)``."""

    config: EPOConfig
    base_name: str = ""
    """The ``config.base`` this class implements."""

    # ---------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        super().setup()  # type: ignore[misc]
        if self.config.base != self.base_name:
            raise ValueError(f"{type(self).__name__} runs base {self.base_name!r}, the config asks for "
                             f"{self.config.base!r} (use trainers.epo.make_trainer)")
        self.entropy_history = EntropyHistory(window=self.config.epo_history_window)

    # ------------------------------------------------------------------------------------ schedule
    def phase_weight(self, iteration: float | None = None) -> float:
        """w(e) at ``iteration`` (default: now: the iteration being trained, ``self.step``, or with
        ``epo_schedule_env_steps`` the env steps played before it); 1 without weighting."""
        cfg = self.config
        if not cfg.epo_phase_weighting:
            return 1.0
        if iteration is None and cfg.epo_schedule_env_steps:
            return epo_phase_weight(self.env_steps_total / cfg.epo_schedule_env_steps, 1.0)  # type: ignore[attr-defined]
        return epo_phase_weight(self.step if iteration is None else iteration, cfg.schedule_iterations)  # type: ignore[attr-defined]

    def entropy_reference(self, turn_idx: Tensor) -> Tensor:
        """Hbar per row for ``turn_idx`` [N] (float32), NaN where the history has no entry for the turn."""
        return self.entropy_history.reference_tensor(turn_idx.cpu(), float("nan"))

    # -------------------------------------------------------------------------------------- update
    def update(self, batch: RLBatch) -> UpdateStats:
        """Fix this iteration's references (past iterations only), then the base's update."""
        self.begin_epo_iteration(batch)
        return super().update(batch)  # type: ignore[misc]

    def begin_epo_iteration(self, batch: RLBatch) -> None:
        """This iteration's per-row references and empty per-row entropy accumulators (``batch.extras``)."""
        n = len(batch)
        batch.extras[ENTROPY_REF] = self.entropy_reference(batch.turn_idx)
        batch.extras[ENTROPY_SUM] = torch.zeros(n, dtype=torch.float64)
        batch.extras[ENTROPY_COUNT] = torch.zeros(n, dtype=torch.float64)
        batch.extras[SEEN] = torch.full((n,), -1, dtype=torch.long)

    def loss_terms(
        self, batch: RLBatch, rows: Sequence[int], out: TokenLogprobs
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The base's terms (PG, KL, -c_H H) plus ``epo_band`` = c_H beta w(e) P."""
        terms, stats = super().loss_terms(batch, rows, out)  # type: ignore[misc]
        if out.entropy is None:
            return terms, stats
        cfg = self.config
        if ENTROPY_REF not in batch.extras:
            self.begin_epo_iteration(batch)
        ent = out.entropy
        dev = ent.device
        w = batch.weights[rows, : ent.shape[1]].to(dev)
        self._record_entropy(batch, rows, ent.detach(), w)
        ref = batch.extras[ENTROPY_REF][list(rows)].to(dev)
        has_ref = ~torch.isnan(ref)
        band_w = w * has_ref[:, None].to(w.dtype)
        penalty, outside = epo_band_penalty(ent, torch.nan_to_num(ref, nan=0.0), band_w, kappa_lo=cfg.epo_kappa_lo,
                                            kappa_hi=cfg.epo_kappa_hi, alpha=cfg.epo_alpha)
        # token-mean over all of the micro-batch's trained tokens (those without a reference count as inside)
        share = band_w.sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)
        penalty, outside = penalty * share.to(penalty.dtype), outside * share.to(outside.dtype)
        terms["epo_band"] = cfg.entropy_coef * cfg.epo_beta * self.phase_weight() * penalty
        stats["epo/band_penalty"] = penalty.detach()
        stats["epo/outside_band_frac"] = outside.detach()
        return terms, stats

    def _record_entropy(self, batch: RLBatch, rows: Sequence[int], ent: Tensor, w: Tensor) -> None:
        """Record the entropy sums and token counts of the rows forwarded for the first time this iteration."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        seen = batch.extras[SEEN]
        new = seen[idx] < 0
        if not bool(new.any()):
            return
        seen[idx[new]] = int((seen >= 0).sum()) + torch.arange(int(new.sum()))
        m = (w > 0) & new.to(w.device)[:, None]
        sums = torch.where(m, ent, torch.zeros((), dtype=ent.dtype, device=ent.device)).double().sum(-1).cpu()
        batch.extras[ENTROPY_SUM].index_add_(0, idx, sums)
        batch.extras[ENTROPY_COUNT].index_add_(0, idx, m.sum(-1).double().cpu())

    # ------------------------------------------------------------------------------------- history
    def turn_entropy_stats(self, batch: RLBatch) -> tuple[Tensor, Tensor]:
        """This iteration's per-turn-index entropy sums and token counts over all processes ([n] float64, n the
        turn cap or more)."""
        n = max([self.config.max_turns, *(int(t) + 1 for t in batch.turn_idx.tolist())])
        sums = torch.zeros(n, dtype=torch.float64)
        counts = torch.zeros(n, dtype=torch.float64)
        if SEEN in batch.extras:
            order = batch.extras[SEEN]
            rows = torch.argsort(torch.where(order < 0, len(order) + torch.arange(len(order)), order))
            sums.index_add_(0, batch.turn_idx[rows], batch.extras[ENTROPY_SUM][rows])
            counts.index_add_(0, batch.turn_idx[rows], batch.extras[ENTROPY_COUNT][rows])
        acc = self.accelerator  # type: ignore[attr-defined]
        if acc.num_processes > 1:
            both = acc.reduce(torch.cat([sums, counts]).to(acc.device), reduction="sum").cpu()
            sums, counts = both[:n], both[n:]
        return sums, counts

    def turn_entropy(self, batch: RLBatch) -> dict[int, float]:
        """{turn index: token-mean entropy} of this iteration (all processes), turn indices with tokens only."""
        sums, counts = self.turn_entropy_stats(batch)
        return {k: float(sums[k] / counts[k]) for k in range(counts.numel()) if counts[k] > 0}

    def on_step_end(self, batch: RLBatch, metrics: dict[str, float]) -> None:
        """The iteration's per-turn entropies join the history (after the update used the older ones)."""
        super().on_step_end(batch, metrics)  # type: ignore[misc]
        means = self.turn_entropy(batch)
        if means:
            self.entropy_history.update(means)

    # ----------------------------------------------------------------------------------------- log
    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        m = super().metrics(batch, rollout, update)  # type: ignore[misc]
        cfg = self.config
        if ENTROPY_REF in batch.extras:
            m["epo/phase_weight"] = self.phase_weight()
        sums, counts = self.turn_entropy_stats(batch)
        hist = self.entropy_history
        for k in range(min(cfg.epo_log_turns, counts.numel())):
            if counts[k] > 0:
                m[f"epo/entropy_turn_{k}"] = float(sums[k] / counts[k])
                ref = hist.reference(k)
                if ref is not None:
                    m[f"epo/ref_turn_{k}"] = ref
        total = float(counts.sum())
        if total > 0:
            m["epo/entropy"] = float(sums.sum()) / total
            refs = {k: hist.reference(k) for k in range(counts.numel()) if counts[k] > 0}
            with_ref = {k: r for k, r in refs.items() if r is not None}
            covered = sum(float(counts[k]) for k in with_ref)
            m["epo/band_active_frac"] = covered / total
            if covered > 0:
                m["epo/ref_entropy"] = sum(float(counts[k]) * r for k, r in with_ref.items()) / covered
        state = hist.state_dict()
        m["epo/history_turns"] = float(len(state["count"]) + len(state["recent"]))
        return m

    # ---------------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "epo_history": self.entropy_history.state_dict()}  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        self.entropy_history.load_state_dict(state["epo_history"])


class EPOGRPOTrainer(EPOMixin, GRPOTrainer):
    """EPO on GRPO (group advantages, PPO clip, KL)."""

    config_class = EPOConfig
    name = "epo_grpo"
    base_name = "grpo"


class EPOPPOTrainer(EPOMixin, PPOTrainer):
    """EPO on PPO (critic, turn-level GAE, PPO clip, KL)."""

    config_class = EPOConfig
    name = "epo_ppo"
    base_name = "ppo"


TRAINERS: dict[str, type[Trainer]] = {"grpo": EPOGRPOTrainer, "ppo": EPOPPOTrainer}
"""``config.base`` -> EPO trainer class."""


def make_trainer(config: EPOConfig, **kwargs: Any) -> Trainer:
    """The EPO trainer for ``config.base`` (``kwargs`` go to the trainer: ``env_fn``, ``policy``, ...);
    the CLI's entry point for ``python -m trainers epo``."""
    cls: Callable[..., Trainer] = TRAINERS[config.base]
    return cls(config, **kwargs)
