"""What a trainer needs around its loop: devices and processes (Accelerate), the policy, seeded generators,
gradient accumulation that is safe under DDP, SFT warm start, evaluation, checkpoints and logging.

:class:`RuntimeMixin` is mixed into :class:`trainers.core.trainer.Trainer`; nothing here is method-specific.

Distributed (``accelerate launch``, DDP): the policy (and any critic) is wrapped by ``accelerator.prepare``;
rollouts and sampling use the bare model, losses run through the wrapper. Processes play different tasks
and may run different numbers of micro-batches, so micro-batches accumulate gradients under ``no_sync`` and
one zero-valued forward/backward through the wrapper then all-reduces the accumulated gradients (the same
number of collectives on every process, whatever its data). Replicas therefore stay identical.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from pilot_envs.replay import env_header
from trainers.core.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    read_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from trainers.core.evaluation import evaluate_policy, report_metrics, split_tasks
from trainers.core.logger import RunLogger, save_transcripts
from trainers.core.policy import LoraSpec, Policy
from trainers.core.progress import Heartbeat, eta
from trainers.core.rollout import TaskSpec
from trainers.core.rundir import RunDirError, RunLock, claim_run_dir, config_json, record_resume
from trainers.core.sft import expert_corpus, expert_samples, sft_train

__all__ = ["RuntimeMixin"]


class RuntimeMixin:
    """Infrastructure shared by every trainer (see the module docstring)."""

    config: Any

    # ------------------------------------------------------------------------------------- setup
    def setup_runtime(self, env_fn: Callable[[], gym.Env] | None, policy: Policy | None, accelerator: Any) -> None:
        from accelerate import Accelerator

        import pilot_envs  # noqa: F401  (registers the env ids)

        cfg = self.config
        if accelerator is None:
            mp = cfg.mixed_precision
            if mp == "auto":
                mp = "bf16" if torch.cuda.is_available() else "no"
            # cpu=True without CUDA: under torchrun, CPU processes then form a gloo group (MULTI_CPU)
            accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available())
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.is_main = accelerator.is_main_process
        torch.manual_seed(cfg.seed)
        self.env_fn = env_fn or (lambda: gym.make(cfg.env, **self.env_kwargs()))
        self.policy = policy or self.build_policy()
        params = self.policy.parameters()
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.module, self.optimizer = accelerator.prepare(self.policy.model, optimizer)
        dev = self.policy.device
        # Per-process streams: different tasks and samples on each process, reproducible per seed.
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed * 1000 + 17 * self.rank + 1)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 17 * self.rank + 2)
        self.task_rng = np.random.default_rng([cfg.seed, self.rank, 1])
        self.step = 0
        self.env_steps_total = 0
        self.logger: RunLogger | None = None
        self.eval_history: list[dict[str, Any]] = []
        self.run_lock: RunLock | None = None
        self.heartbeat = Heartbeat(getattr(self, "name", "train"), cfg.progress_every, enabled=self.is_main)

    def env_kwargs(self) -> dict[str, Any]:
        """``gym.make`` kwargs: reward settings, ``plan_mode`` (when set) and ``env_kwargs``."""
        cfg = self.config
        kw: dict[str, Any] = {
            "reward_mode": cfg.reward_mode,
            "success_reward": cfg.success_reward,
            "invalid_action_penalty": cfg.invalid_action_penalty,
        }
        if cfg.plan_mode is not None:
            kw["plan_mode"] = cfg.plan_mode
        return {**kw, **cfg.env_kwargs}

    def build_policy(self) -> Policy:
        """Load ``config.model`` (:func:`trainers.core.models.resolve_model`: an HF directory, a GGUF file,
        ``smollm2``, ``tiny``); ``tiny`` builds (once, cached) a tokenizer from the env's expert text."""
        from trainers.core.models import resolve_model
        from trainers.core.tiny import tiny_corpus_from_texts

        cfg = self.config
        name = cfg.model
        if name == "tiny":
            with self.accelerator.main_process_first():
                env = self.env_fn()
                try:
                    opts = {"split": cfg.sft_split} if cfg.sft_split else None
                    tasks = [TaskSpec(100_000 + i, opts) for i in range(cfg.tiny_corpus_episodes)]
                    corpus = tiny_corpus_from_texts(expert_corpus(env, tasks) or ["look"])
                finally:
                    env.close()
                name = resolve_model("tiny", cfg.model_cache_dir, corpus=corpus, hidden=cfg.tiny_hidden,
                                     layers=cfg.tiny_layers, heads=cfg.tiny_heads, seed=cfg.seed)
        else:
            with self.accelerator.main_process_first():  # a GGUF model is converted once, by the main process
                name = resolve_model(name, cfg.model_cache_dir, gguf_file=cfg.gguf_file)
        dtype = None if cfg.dtype == "auto" else cfg.dtype
        if dtype is None:
            dtype = "float32"  # master weights stay fp32; autocast (mixed_precision) gives bf16 compute on GPUs
        lora = LoraSpec(r=cfg.lora_r, alpha=2 * cfg.lora_r) if cfg.lora_r else None
        return Policy.from_pretrained(name, device=self.accelerator.device, dtype=dtype, lora=lora, seed=cfg.seed,
                                      gradient_checkpointing=cfg.gradient_checkpointing)

    # ------------------------------------------------------------------------------ gradients
    def backward_micro_batches(self, module: torch.nn.Module, losses: Iterable[Tensor], sync_loss: Callable[[], Tensor]) -> None:
        """Backward every loss (gradients accumulate); with several processes, under ``no_sync`` and then
        one zero loss through ``module`` that all-reduces the accumulated gradients."""
        acc = self.accelerator
        distributed = acc.num_processes > 1
        with acc.no_sync(module) if distributed else nullcontext():
            for loss in losses:
                acc.backward(loss)
        if distributed:
            acc.backward(sync_loss())

    def policy_sync_loss(self) -> Tensor:
        """A zero loss through the (DDP) policy module that touches every parameter."""
        ids = torch.tensor([[self.policy.pad_token_id]], device=self.policy.device)
        with self.accelerator.autocast():
            out = self.module(input_ids=ids, use_cache=False, logits_to_keep=1)
        return out.logits.float().sum() * 0.0

    def optimizer_step(
        self,
        module: torch.nn.Module,
        optimizer: Any,
        params: list[torch.nn.Parameter],
        parts: Iterable[tuple[Tensor, dict[str, float]]],
        sync_loss: Callable[[], Tensor],
        *,
        norm_key: str,
    ) -> dict[str, float]:
        """The one micro-batch loop of every optimizer step (policy or critic): backward each part's loss
        (already scaled to its share of the step; gradients accumulate, :meth:`backward_micro_batches`), sum
        each part's statistics (already scaled likewise), clip and step. Returns the summed statistics plus the
        pre-clip gradient norm under ``norm_key``."""
        acc: dict[str, float] = {}

        def losses() -> Iterator[Tensor]:
            for loss, stats in parts:
                for key, v in stats.items():
                    acc[key] = acc.get(key, 0.0) + v
                yield loss

        self.backward_micro_batches(module, losses(), sync_loss)
        acc[norm_key] = self.clip_and_step(optimizer, params)
        return acc

    def clip_and_step(self, optimizer: Any, params: list[torch.nn.Parameter]) -> float:
        """Clip gradients to ``max_grad_norm`` (if set), step, zero; returns the pre-clip norm."""
        cfg = self.config
        if cfg.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        else:
            norm = float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in params if p.grad is not None)))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def global_sum(self, x: float) -> float:
        """Sum of ``x`` over processes."""
        if self.accelerator.num_processes == 1:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(t, reduction="sum"))

    def global_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Average a metrics dict over processes (every process must have the same keys)."""
        if self.accelerator.num_processes == 1:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(keys, t.tolist(), strict=True))

    # -------------------------------------------------------------------------------- warm start
    def sft_env(self) -> gym.Env:
        """The env the expert plays for the SFT warm start (PilotRL wraps it to mix plan modes)."""
        return self.env_fn()

    def sft_plan_source(self) -> str:
        """The expert's first-turn plan in the SFT warm start (a name of ``trainers.core.sft.PLAN_SOURCES``; a method
        with a plan-language option overrides it)."""
        return "milestones"

    def warm_start(self) -> dict[str, float]:
        """SFT on ``sft_episodes`` expert episodes (split across processes); returns metrics."""
        cfg = self.config
        if cfg.sft_episodes <= 0:
            return {}
        env = self.sft_env()
        try:
            opts = {"split": cfg.sft_split} if cfg.sft_split else None
            mine = range(self.rank, cfg.sft_episodes, self.accelerator.num_processes)
            tasks = [TaskSpec(200_000 + cfg.seed * 100_003 + i, opts) for i in mine]
            samples = expert_samples(env, tasks, self.build_renderer(self.policy), think=cfg.sft_think,
                                     max_turns=cfg.max_turns, noise=cfg.sft_noise,
                                     rng=np.random.default_rng([cfg.seed, self.rank, 2]),
                                     plan_source=self.sft_plan_source())
        finally:
            env.close()
        count = self.global_sum(float(len(samples)))
        per_step = cfg.sft_batch_size * self.accelerator.num_processes
        steps = cfg.sft_steps or max(1, math.ceil(count / per_step))
        opt = torch.optim.AdamW(self.policy.parameters(), lr=cfg.sft_lr, weight_decay=cfg.weight_decay)
        distributed = self.accelerator.num_processes > 1
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="sft", disable=not (self.is_main and cfg.progress_bar))

        def on_step(i: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            self.heartbeat(lambda: f"sft step {i + 1}/{steps}, loss {loss:.3f}, ETA "
                                   f"{eta(i + 1, steps, time.monotonic() - start)}")

        start = time.monotonic()

        losses = sft_train(
            self.policy, samples, steps=steps, batch_size=cfg.sft_batch_size, micro_batch_tokens=cfg.micro_batch_tokens,
            seed=cfg.seed * 7 + self.rank, warmup_steps=cfg.sft_warmup_steps, max_grad_norm=cfg.max_grad_norm,
            optimizer=opt, module=self.module,
            backward=self.accelerator.backward,
            sync=(lambda: self.accelerator.backward(self.policy_sync_loss())) if distributed else None,
            no_sync=(lambda: self.accelerator.no_sync(self.module)) if distributed else None, on_step=on_step,
        )
        bar.close()
        self.policy.train(False)
        tail = losses[-max(1, len(losses) // 10) :]
        return {"sft/loss_first": losses[0], "sft/loss_last": sum(tail) / len(tail), "sft/steps": float(steps),
                "sft/samples": count}

    # -------------------------------------------------------------------------------- evaluation
    def evaluate(self, step: int) -> dict[str, float]:
        """Play the eval split (sharded over processes) at ``eval_temperature``; returns ``eval/*``."""
        from accelerate.utils import gather_object

        from pilot_envs.evaluate import SplitReport

        cfg = self.config
        if cfg.eval_split is None:
            return {}
        probe = self.env_fn()
        try:
            tasks = split_tasks(probe, cfg.eval_split, cfg.eval_tasks, seed=cfg.seed, samples=cfg.eval_samples)
            header = env_header(probe)
        finally:
            probe.close()
        mine = tasks[self.rank :: self.accelerator.num_processes]
        envs = [self.env_fn() for _ in range(max(1, min(cfg.num_envs, len(mine))))]
        agent = replace(self.agent, max_turns=cfg.eval_max_turns or cfg.max_turns)
        try:
            say = lambda msg: self.heartbeat(lambda: f"evaluating {cfg.eval_split} at iteration {step}: {msg()}")  # noqa: E731
            report, trajs = evaluate_policy(self.policy, envs, agent, mine, temperature=cfg.eval_temperature, progress=say,
                                            seed=cfg.seed + 12345, env_id=cfg.env, split=cfg.eval_split,
                                            autocast=self.accelerator.autocast)
        finally:
            for e in envs:
                e.close()
        episodes = gather_object(report.episodes) if self.accelerator.num_processes > 1 else report.episodes
        full = SplitReport(cfg.env, cfg.eval_split, sorted(episodes, key=lambda e: e.task_id))
        if self.is_main:
            save_transcripts(trajs, self.run_dir / "transcripts" / f"eval-step-{step:06d}.jsonl", env=header)
            self.eval_history.append({"step": step, "by_type": full.by_type()})
        self.last_eval_report = full
        return report_metrics(full)

    # -------------------------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Checkpoint the current step (main process writes; everyone waits)."""
        rng = self._rng_state()  # a collective: every process takes part
        if self.is_main:
            unwrap = self.accelerator.unwrap_model
            save_checkpoint(
                self.run_dir / "checkpoints",
                self.step,
                modules={k: unwrap(m) for k, m in self.checkpoint_modules().items()},
                optimizers=self.checkpoint_optimizers(),
                rng=rng,
                state={"config": config_json(self.config), "trainer": self.state_dict(), "eval_history": self.eval_history},
                keep=self.config.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()

    def _rngs(self) -> tuple[dict[str, torch.Generator], dict[str, np.random.Generator]]:
        return {"sample": self.generator, "shuffle": self.shuffle_gen}, {"tasks": self.task_rng}

    def _rng_state(self) -> dict[str, Any]:
        """RNG states of every process (each restores its own)."""
        from accelerate.utils import gather_object

        mine = rng_state(*self._rngs())
        states = gather_object([mine]) if self.accelerator.num_processes > 1 else [mine]
        return {"per_process": states}

    def open_run(self) -> Path | None:
        """Claim the run directory (:mod:`trainers.core.rundir`: lock, no silent replacement, resume checks the
        config) and return the verified checkpoint a ``resume`` continues (None: a fresh start)."""
        cfg = self.config
        path = find_checkpoint(self.run_dir / "checkpoints") if cfg.resume else None
        saved = read_trainer_state(path).get("config") if path is not None else None
        error = None
        if self.is_main:
            try:
                self.run_lock = claim_run_dir(self.run_dir, cfg, saved_config=saved)
            except RunDirError as exc:
                error = str(exc)
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            error = next((e for e in gather_object([error]) if e), None)
            if error is not None and self.run_lock is not None:
                self.close_run()
        if error is not None:
            raise RunDirError(error)
        if cfg.resume and path is None and self.is_main:
            print(f"{self.run_dir}: no checkpoint to resume, starting fresh", file=sys.stderr, flush=True)
        return path

    def close_run(self) -> None:
        """Release the run directory's lock."""
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None

    def resume_from(self, path: Path) -> None:
        """Load checkpoint ``path`` (weights, optimizers, RNGs, trainer state) so the run continues exactly."""
        unwrap = self.accelerator.unwrap_model
        state, rng = load_checkpoint(path, modules={k: unwrap(m) for k, m in self.checkpoint_modules().items()},
                                     optimizers=self.checkpoint_optimizers(), map_location=self.policy.device)
        per = rng["per_process"]
        if len(per) != self.accelerator.num_processes:
            raise RuntimeError(f"checkpoint written by {len(per)} processes, resuming with "
                               f"{self.accelerator.num_processes}: exact resumption needs the same number")
        set_rng_state(per[self.rank], *self._rngs())
        self.step = int(state["step"])
        self.load_state_dict(state["trainer"])
        self.eval_history = list(state.get("eval_history", []))
        if self.is_main:
            record_resume(self.run_dir, path, self.step)
            print(f"{self.run_dir}: resumed from {path} (iteration {self.step} of {self.config.iterations})",
                  file=sys.stderr, flush=True)

    def save_iteration_transcripts(self, trajs: list[Any]) -> None:
        """Every ``transcripts_every`` iterations (and the first), this process's trajectories as JSONL."""
        every, it = self.config.transcripts_every, self.step + 1
        if self.is_main and every and (it == 1 or it % every == 0):
            save_transcripts(trajs, self.run_dir / "transcripts" / f"iter-{it:06d}.jsonl", self.policy.tokenizer,
                             env=env_header(self.envs[0]) if getattr(self, "envs", None) else None)
