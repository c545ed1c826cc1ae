"""The loop every RL trainer shares, as small overridable hooks.

One iteration reads top to bottom (:meth:`Trainer.train_step`)::

    tasks = self.sample_tasks()                      # G rollouts per task (group sampling)
    trajs, rollout = self.collect(tasks)             # batched multi-turn rollouts + their timing
    batch = self.make_batch(trajs)                   # one row per turn: prompt, response, old logprobs
    batch.rewards = self.score(batch)                # per-turn rewards [N]
    batch.adv_output = self.compute_advantages(batch)  # ADVANTAGES[config.advantage](TurnBatch, cfg)
    batch.advantages = self.token_advantages(batch, batch.adv_output)   # per-token advantages [N, T]
    batch.weights = self.loss_weights(batch)         # per-token loss weights [N, T] (0 = not trained)
    update = self.update(batch)                      # loss_terms per micro-batch -> optimizer step(s)
    metrics = self.metrics(batch, rollout, update)   # env/*, losses/*, policy/*, perf/*

State passes through these arguments and return values; what a method adds to a batch lives in the batch's
checked ``extras`` under the method's own key constants (:mod:`trainers.core.batch`). Method trainers override
hooks, never the loop: e.g. PilotRL (``build_collector``/``collect``/``score``/``token_weights`` per stage),
HiPER (``advantage_batch``/``compute_advantages``/``token_advantages`` with a 3-head critic,
``update_critic``), EPO (``loss_terms`` plus ``on_step_end``), EMPG (``compute_advantages``). Every optimizer
step - policy or critic - goes through one micro-batch / backward / clip loop
(:meth:`~trainers.core.runtime.RuntimeMixin.optimizer_step`). Distributed training goes through Accelerate
(DDP): every process plays its own tasks, gradients are averaged, so replicas stay identical.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from pilot_envs.core.contract import text_env
from trainers.core.advantages import AdvantageConfig, AdvantageOutput, TurnBatch, standardise
from trainers.core.batch import RLBatch
from trainers.core.config import TrainerConfig
from trainers.core.logger import RunLogger
from trainers.core.losses import aggregate_weights, entropy_bonus, kl_low_var, masked_mean
from trainers.core.policy import Policy, Sampler, TokenLogprobs
from trainers.core.progress import eta
from trainers.core.registry import ADVANTAGES, POLICY_LOSSES
from trainers.core.rollout import (
    AgentSpec,
    PromptRenderer,
    RolloutCollector,
    RolloutStats,
    TaskSpec,
    Trajectory,
    expand_groups,
    turn_batch,
)
from trainers.core.runtime import RuntimeMixin
from trainers.core.tree import TreeSpec

__all__ = ["RLBatch", "Trainer", "UpdateStats"]


@dataclass
class UpdateStats:
    """What :meth:`Trainer.update` did: its statistics (averaged over optimizer steps) and the padded tokens
    forwarded and backpropagated through the policy, for ``perf/train_tokens_per_s``."""

    stats: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0


class Trainer(RuntimeMixin):
    """Base RL trainer: subclass, set ``config_class``, override hooks.

    Args:
        config: the trainer's config dataclass.
        env_fn: builds one env (default ``gym.make(config.env, **self.env_kwargs())``).
        policy: an already built :class:`Policy` (default: loaded from ``config.model``).
        accelerator: an ``accelerate.Accelerator`` (default: a new one from the config).
    """

    config_class: type[TrainerConfig] = TrainerConfig
    name = "base"

    def __init__(
        self,
        config: TrainerConfig,
        *,
        env_fn: Callable[[], gym.Env] | None = None,
        policy: Policy | None = None,
        accelerator: Any = None,
    ) -> None:
        self.config = config
        self.setup_runtime(env_fn, policy, accelerator)
        cfg = config
        self.envs = [self.env_fn() for _ in range(cfg.num_envs)]
        self.agent = self.agent_spec()
        self.collector = self.build_collector(self.policy)
        self.ref_model = None
        if cfg.kl_coef > 0:
            self.ref_model = copy.deepcopy(self.policy.model).requires_grad_(False).eval()
        self.setup()

    # ================================================================================== setup hooks
    def setup(self) -> None:
        """Build method-specific parts (critics, histories). Called at the end of ``__init__``."""

    def agent_spec(self) -> AgentSpec:
        """Prompt format and sampling settings of training rollouts."""
        cfg = self.config
        return AgentSpec(
            prompt_format=cfg.prompt_format,
            history_window=cfg.history_window,
            max_prompt_tokens=cfg.max_prompt_tokens,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            stop_strings=tuple(cfg.stop_strings),
            max_turns=cfg.max_turns,
            instruction=cfg.instruction,
            task_reminder=cfg.task_reminder,
            instructions_in_system=(self.policy.has_system_role() if cfg.instructions_in_system is None
                                    else cfg.instructions_in_system),
            domain=text_env(self.envs[0]).domain,
        )

    def build_renderer(self, policy: Sampler) -> PromptRenderer:
        """Observation + history -> prompt ids, for rollouts and SFT (a method with its own prompts overrides)."""
        return PromptRenderer(policy, self.agent)

    def build_collector(self, policy: Sampler) -> RolloutCollector:
        """The collector of training rollouts on ``self.envs`` (a method that records more overrides it)."""
        return RolloutCollector(policy, self.envs, self.agent, generator=self.generator,
                                autocast=self.accelerator.autocast, renderer=self.build_renderer(policy),
                                tree=self.tree_spec())

    def tree_spec(self) -> TreeSpec | None:
        """Tree rollouts (``tree_turns``, ``tree_width``), or None for independent episodes."""
        cfg = self.config
        return TreeSpec(tuple(cfg.tree_turns), cfg.tree_width) if cfg.tree_turns else None

    def advantage_config(self) -> AdvantageConfig:
        cfg = self.config
        return AdvantageConfig(gamma=cfg.gamma, lam=cfg.lam, norm_by_std=cfg.norm_by_std)

    def on_warm_start_end(self) -> None:
        """After SFT: the KL reference becomes the warm-started policy (PPO also re-copies its critic)."""
        if self.ref_model is not None:
            self.ref_model.load_state_dict(self.policy.model.state_dict())

    # =================================================================================== the loop
    def train(self) -> dict[str, float]:
        """Warm start (SFT) and evaluate, then ``iterations`` RL iterations; returns the last metrics.

        The run directory is claimed first (:meth:`open_run`: locked for the run; a fresh run refuses a
        directory holding another run unless ``overwrite``). With ``resume`` the newest verified checkpoint is
        loaded (its config must match) and the run continues exactly where it stopped.
        """
        checkpoint = self.open_run()
        try:
            return self._train(checkpoint)
        finally:
            self.close_run()

    def _train(self, checkpoint: Path | None) -> dict[str, float]:
        from tqdm.auto import tqdm

        cfg = self.config
        if checkpoint is not None:
            self.resume_from(checkpoint)
        self.logger = RunLogger(self.run_dir, tensorboard=cfg.tensorboard, enabled=self.is_main,
                                resume_step=self.step if checkpoint is not None else None)
        last: dict[str, float] = {}
        if checkpoint is None:
            sft = self.warm_start()
            if sft:
                self.on_warm_start_end()
            last = {**sft, **self.evaluate(step=0)}
            if last:
                self.logger.log(last, step=0)
        bar = tqdm(total=cfg.iterations, initial=self.step, desc=self.name, disable=not (self.is_main and cfg.progress_bar))
        loop_start, first = time.monotonic(), self.step
        while self.step < cfg.iterations:
            metrics = self.global_mean(self.train_step())
            self.step += 1
            self.env_steps_total += round(metrics["env/steps"] * self.accelerator.num_processes)
            metrics["env/steps_total"] = float(self.env_steps_total)  # all processes
            if self.step == cfg.iterations or (cfg.eval_every and self.step % cfg.eval_every == 0):
                metrics.update(self.evaluate(self.step))
            self.logger.log(metrics, self.step)
            if self.step == cfg.iterations or (cfg.save_every and self.step % cfg.save_every == 0):
                self.save()
            bar.update(1)
            bar.set_postfix(success=f"{metrics['env/success_rate']:.2f}", ret=f"{metrics['env/return']:.2f}")
            self.heartbeat(lambda m=metrics: (
                f"iteration {self.step}/{cfg.iterations}: {self.env_steps_total} env steps, success "
                f"{m['env/success_rate']:.2f}, return {m['env/return']:.2f}"
                + (f", eval success {m['eval/success_rate']:.3f}" if "eval/success_rate" in m else "")
                + f", ETA {eta(self.step - first, cfg.iterations - first, time.monotonic() - loop_start)}"))
            last = metrics
        bar.close()
        self.finish()
        return last

    def finish(self) -> None:
        """Learning curves, the final model (Hugging Face format), close the logger."""
        if self.is_main and self.logger is not None:
            self.logger.plot(title=f"{self.name} on {self.config.env}")
            if self.config.save_final_model:
                self.policy.save(self.run_dir / "final")
        if self.logger is not None:
            self.logger.close()
        self.accelerator.wait_for_everyone()

    def train_step(self) -> dict[str, float]:
        """One iteration: collect -> score -> advantages -> loss -> step; returns its metrics."""
        t0 = time.perf_counter()
        tasks = self.sample_tasks()
        trajs, rollout = self.collect(tasks)
        self.save_iteration_transcripts(trajs)
        batch = self.make_batch(trajs)
        batch.rewards = self.score(batch)
        batch.adv_output = self.compute_advantages(batch)
        batch.advantages = self.token_advantages(batch, batch.adv_output)
        batch.weights = self.loss_weights(batch)
        update = self.update(batch)
        metrics = self.metrics(batch, rollout, update)
        metrics["perf/iteration_s"] = time.perf_counter() - t0
        self.on_step_end(batch, metrics)
        return metrics

    # ---------------------------------------------------------------------------------- collect
    def sample_tasks(self) -> list[TaskSpec]:
        """``tasks_per_iteration`` tasks (a seed each, options ``{"split": train_split}``), each repeated
        ``group_size`` times with a shared group id."""
        cfg = self.config
        seeds = self.task_rng.integers(0, 2**31 - 1, size=cfg.tasks_per_iteration)
        opts = {"split": cfg.train_split} if cfg.train_split else None
        first = self.step * cfg.tasks_per_iteration
        return expand_groups([TaskSpec(int(s), opts) for s in seeds], cfg.group_size, first_group=first)

    def collect(self, tasks: Sequence[TaskSpec]) -> tuple[list[Trajectory], RolloutStats]:
        """Play the tasks with the current policy (batched, lockstep); trajectories and rollout timing."""
        self.policy.train(False)
        return self.collector.collect(tasks, progress=self.phase_progress("rollouts"))

    def phase_progress(self, phase: str) -> Callable[[Callable[[], str]], None]:
        """A progress callback for a phase of the current iteration (its lines name the iteration and phase)."""
        total = self.config.iterations
        return lambda msg: self.heartbeat(lambda: f"iteration {self.step + 1}/{total}: {phase}, {msg()}")

    def make_batch(self, trajs: list[Trajectory]) -> RLBatch:
        batch = RLBatch.from_trajectories(trajs)
        if self.ref_model is not None:
            batch.ref_logprobs = self.forward_no_grad(Policy(self.ref_model, self.policy.tokenizer), batch)
        return batch

    # ------------------------------------------------------------------------------------ score
    def score(self, batch: RLBatch) -> Tensor:
        """Per-turn rewards [N]: the env reward minus ``format_penalty`` on malformed responses."""
        pen = self.config.format_penalty
        return torch.tensor([t.reward - pen * (not t.format_ok) for t in batch.turns], dtype=torch.float32)

    # ------------------------------------------------------------------------------- advantages
    def advantage_batch(self, batch: RLBatch) -> TurnBatch:
        """The estimator's input (critic trainers add ``values`` / ``last_values`` here)."""
        return turn_batch(batch.trajectories, batch.rewards)

    def compute_advantages(self, batch: RLBatch) -> AdvantageOutput:
        """The registered estimator named ``config.advantage`` (optionally batch-standardised)."""
        out = ADVANTAGES.get(self.config.advantage)(self.advantage_batch(batch), self.advantage_config())
        if self.config.normalize_advantages:
            out = replace(out, advantages=standardise(out.advantages))  # returns, extras and stats kept
        return out

    def token_advantages(self, batch: RLBatch, adv: AdvantageOutput) -> Tensor:
        """Per-token advantages [N, T]: each turn's advantage on every token of its response."""
        return adv.advantages.float()[:, None].expand_as(batch.old_logprobs) * batch.mask

    def token_weights(self, batch: RLBatch) -> Tensor:
        """Per-token loss weights [N, T] before aggregation: 1 on every policy token (methods narrow it to the
        spans they train); :meth:`loss_weights` then applies ``loss_agg``."""
        return batch.mask.float()

    def loss_weights(self, batch: RLBatch) -> Tensor:
        """:meth:`token_weights` aggregated by ``config.loss_agg`` (:func:`~trainers.core.losses.aggregate_weights`)."""
        return aggregate_weights(self.token_weights(batch), [t.traj_id for t in batch.turns], self.config.loss_agg)

    # ----------------------------------------------------------------------------------- update
    def loss_terms(
        self, batch: RLBatch, rows: Sequence[int], out: TokenLogprobs
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Loss terms of one micro-batch (summed into the loss) and statistics to log.

        Each term is a weighted token-mean over the micro-batch (weights ``batch.weights``); the update
        rescales micro-batches so the step optimises the token-mean over the whole mini-batch.
        """
        cfg = self.config
        width = out.logprobs.shape[1]
        dev = out.logprobs.device
        w = batch.weights[rows, :width].to(dev)
        adv = batch.advantages[rows, :width].to(dev)
        old = batch.old_logprobs[rows, :width].to(dev)
        pg, st = POLICY_LOSSES.get(cfg.policy_loss)(
            out.logprobs, old, adv, w, eps_lo=cfg.clip_lo, eps_hi=cfg.clip_hi, dual_clip=cfg.dual_clip
        )
        terms = {"policy": pg}
        stats = {f"losses/{k}": v for k, v in st.items()}
        if out.entropy is not None:
            stats["policy/entropy"] = masked_mean(out.entropy.detach(), w)
        if self.ref_model is not None and batch.ref_logprobs is not None:
            kl = kl_low_var(out.logprobs, batch.ref_logprobs[rows, :width].to(dev), w)
            terms["kl"] = cfg.kl_coef * kl
            stats["losses/kl"] = kl.detach()
        if cfg.entropy_coef > 0 and out.entropy is not None:
            terms["entropy_bonus"] = -cfg.entropy_coef * entropy_bonus(out.entropy, w)
        return terms, stats

    def update(self, batch: RLBatch) -> UpdateStats:
        """``ppo_epochs`` passes of ``mini_batches`` optimizer steps over the batch's rows."""
        cfg = self.config
        start = time.perf_counter()
        acc: dict[str, float] = {}
        steps = tokens = 0
        self.policy.train(True)
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(len(batch), generator=self.shuffle_gen).tolist()
            for k in range(cfg.mini_batches):
                rows = perm[k :: cfg.mini_batches]
                stats, n = self.policy_step(batch, rows)
                tokens += n
                stats.update(self.update_critic(batch, rows))
                for key, v in stats.items():
                    acc[key] = acc.get(key, 0.0) + v
                steps += 1
        self.policy.train(False)
        return UpdateStats({k: v / max(1, steps) for k, v in acc.items()}, tokens, time.perf_counter() - start)

    def policy_step(self, batch: RLBatch, rows: Sequence[int]) -> tuple[dict[str, float], int]:
        """One optimizer step of the policy on ``rows`` (micro-batched, :meth:`optimizer_step`); returns its
        statistics and the padded tokens forwarded."""
        cfg = self.config
        total = self.global_sum(float(batch.weights[rows].sum()))
        if total <= 0:  # nothing to train on any process (e.g. a stage that trains only absent tags)
            return {}, 0
        self.optimizer.zero_grad(set_to_none=True)
        prompts = [batch.prompt_ids[i] for i in rows]
        responses = [batch.response_ids[i] for i in rows]
        tokens = 0
        progress = self.phase_progress("update")

        def parts() -> Iterator[tuple[Tensor, dict[str, float]]]:
            nonlocal tokens
            for mb in self.policy.iter_micro_batches(prompts, responses, cfg.micro_batch_tokens):
                progress(lambda n=tokens: f"{n} tokens through forward/backward in this step")
                mb_rows = [rows[i] for i in mb.indices]
                share = float(batch.weights[mb_rows].sum()) / total
                if share == 0:
                    continue
                with self.accelerator.autocast():
                    out = self.policy.forward_logprobs(mb.prompt_ids, mb.response_ids, with_entropy=True,
                                                       module=self.module)
                    terms, stats = self.loss_terms(batch, mb_rows, out)
                loss = sum(terms.values())
                scale = share * self.accelerator.num_processes  # DDP averages gradients over processes
                logged = {**{f"losses/{k}": t.detach() for k, t in terms.items()}, **stats, "losses/total": loss.detach()}
                tokens += mb.num_tokens
                yield loss * scale, {key: float(v) * scale for key, v in logged.items()}

        acc = self.optimizer_step(self.module, self.optimizer, self.policy.parameters(), parts(),
                                  self.policy_sync_loss, norm_key="policy/grad_norm")
        return acc, tokens

    def update_critic(self, batch: RLBatch, rows: Sequence[int]) -> dict[str, float]:
        """Critic step on ``rows`` (trainers with a critic override it); returns stats."""
        return {}

    # -------------------------------------------------------------------------------------- log
    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        """Iteration metrics (per process; :meth:`train` averages them over processes)."""
        trajs, turns = batch.trajectories, batch.turns
        rs = rollout
        n_tr, n_tu = max(1, len(trajs)), max(1, len(turns))
        adv = batch.adv_output.advantages if batch.adv_output is not None else torch.zeros(1)
        m = {
            "env/success_rate": sum(t.won for t in trajs) / n_tr,
            "env/progress": sum(t.progress for t in trajs) / n_tr,
            "env/invalid_action_rate": sum(not t.action_valid for t in turns) / n_tu,
            "env/format_error_rate": sum(not t.format_ok for t in turns) / n_tu,
            "env/episode_length": len(turns) / n_tr,
            "env/return": float(batch.rewards.sum()) / n_tr if batch.rewards is not None else 0.0,
            "env/steps": float(rs.env_steps),
            "adv/mean": float(adv.mean()),
            "adv/std": float(adv.std()) if adv.numel() > 1 else 0.0,
            "adv/zero_frac": float((adv.abs() < 1e-8).float().mean()),
            "policy/response_tokens": float(batch.mask.sum()) / n_tu,
            "policy/lr": self.optimizer.param_groups[0]["lr"],
            "perf/tokens_per_s": rs.generated_tokens / max(rs.generate_s, 1e-9),
            "perf/env_time_frac": rs.env_s / max(rs.total_s, 1e-9),
            "perf/rollout_s": rs.total_s,
        }
        if batch.adv_output is not None:
            m.update({f"adv/{k}": float(v) for k, v in batch.adv_output.stats.items()})
        m["perf/train_tokens_per_s"] = update.tokens / max(update.seconds, 1e-9)
        m["perf/update_s"] = update.seconds
        m.update(update.stats)
        return m

    def on_step_end(self, batch: RLBatch, metrics: dict[str, float]) -> None:
        """Called after every iteration (EPO updates its entropy history, PilotRL switches stages)."""

    # ---------------------------------------------------------------------------- checkpoint state
    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        """Modules saved in a checkpoint (subclasses add theirs)."""
        mods = {"policy": self.policy.model}
        if self.ref_model is not None:
            mods["ref"] = self.ref_model
        return mods

    def checkpoint_optimizers(self) -> dict[str, Any]:
        return {"policy": self.optimizer}

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe trainer state saved in checkpoints (subclasses extend it)."""
        return {"env_steps_total": self.env_steps_total, "next_traj_id": self.collector.next_traj_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps_total = int(state["env_steps_total"])
        self.collector.next_traj_id = int(state["next_traj_id"])

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    def forward_no_grad(self, policy: Policy, batch: RLBatch) -> Tensor:
        """[N, T] log-probs of the batch's responses under ``policy`` (no gradients, micro-batched)."""
        with torch.no_grad(), self.accelerator.autocast():
            out = policy.forward_logprobs(batch.prompt_ids, batch.response_ids,
                                          micro_batch_tokens=self.config.micro_batch_tokens)
        width = batch.old_logprobs.shape[1]
        return torch.nn.functional.pad(out.logprobs.float().cpu(), (0, width - out.logprobs.shape[1]))
