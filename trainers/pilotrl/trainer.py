"""PilotRL (arXiv 2508.00344): an AdaPlan agent trained by three progressive GRPO stages.

The agent (``prompt_format="adaplan"``) writes a global plan ``<plan>Step 1: .. Step 2: ..</plan>`` when no
plan is in effect, then ``<think>..</think><action>..</action>`` every turn, and may rewrite the plan
(``plan_mode="agent"``: the env keeps the declared plan and shows it in later prompts). After an optional
SFT warm start (the oracle expert in AdaPlan form: the milestones as the plan at turn 0), iterations run in
three stages, each GRPO (A_i = (R_i - mean_G R) / (std_G R + eps) on every trained token of trajectory i,
PPO clip 0.2/0.2, no KL, token-mean):

=======  ==========================  ==========================================  ===============================
stage    rollouts                    tokens trained                              reward R (trainers.pilotrl.rewards)
=======  ==========================  ==========================================  ===============================
1        ``oracle`` plans in prompt  every policy token outside ``<plan>`` spans  outcome + plan following + format
2        ``agent``: policy plans,    the policy's ``<plan>`` spans only           outcome + plan score + format
         frozen stage-1 executor
         acts
3        ``agent``: policy does all  every policy token (plan, think, action)     outcome + plan score + format
=======  ==========================  ==========================================  ===============================

plus the DAPO overlong penalty in every stage. Stage 2's executor is a frozen copy of the policy taken
when stage 2 starts (the end of stage 1, or of SFT if stage 1 is empty); see
:mod:`trainers.pilotrl.collect` for how a turn is written by planner and executor. Valid_unseen is
evaluated (agent mode: the agent's own plans) after SFT, at the end of each stage and every ``eval_every``.

Everything else is the shared loop of :class:`trainers.core.trainer.Trainer`; the hooks overridden are
``setup``, ``build_collector``, ``sft_env``, ``collect``, ``score``, ``token_weights``, ``metrics``,
``on_step_end`` and the checkpoint state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from pilot_envs.core.contract import text_env
from trainers.core.policy import Policy, Sampler
from trainers.core.rollout import RolloutCollector, RolloutStats, TaskSpec, Trajectory
from trainers.core.tagmask import tag_token_masks_batch
from trainers.core.trainer import RLBatch, Trainer, UpdateStats
from trainers.pilotrl.collect import DECLARED, PilotCollector, PlannerExecutor
from trainers.pilotrl.config import PilotRLConfig
from trainers.pilotrl.judge import PlanJudge, load_judge
from trainers.pilotrl.rewards import RewardWeights, trajectory_reward

__all__ = ["STAGE_PLAN_MODES", "PilotRLTrainer", "SFTPlanModes", "reward_term_metrics", "set_plan_mode", "stage_token_weights"]

TERMS = ("outcome", "follow", "plan", "format", "overlong")
REWARD_PARTS = "pilotrl/reward_parts"
"""``RLBatch.traj_extras`` key: each trajectory's unweighted reward terms (for logging)."""
PLAN_MASK = "pilotrl/plan_mask"
"""``RLBatch.extras`` key: [N, T] bool, the response tokens inside ``<plan>`` spans."""

STAGE_PLAN_MODES = {1: "oracle", 2: "agent", 3: "agent"}
"""The env ``plan_mode`` each stage plays."""


def set_plan_mode(envs: Sequence[Any], mode: str) -> None:
    """Switch the ``plan_mode`` of text envs (the env contract's ``set_plan_mode``; it applies at once)."""
    for env in envs:
        text_env(env).set_plan_mode(mode)


class SFTPlanModes(gym.Wrapper):
    """SFT warm start envs: each reset plays ``oracle`` (the env's plan in the prompt; the expert thinks and
    acts) with probability ``oracle_fraction``, drawn from the reset seed, else ``agent`` (the expert's first
    response writes the plan). The warm-started model can then both follow a given plan (stage 1's prompts)
    and write its own (stages 2, 3 and evaluation)."""

    def __init__(self, env: gym.Env, oracle_fraction: float) -> None:
        super().__init__(env)
        self.oracle_fraction = oracle_fraction

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        draw = np.random.default_rng([0 if seed is None else seed, 7]).random()
        set_plan_mode([self.env], "oracle" if draw < self.oracle_fraction else "agent")
        return self.env.reset(seed=seed, options=options)


def stage_token_weights(stage: int, mask: Tensor, plan_mask: Tensor) -> Tensor:
    """Per-token loss weights of a stage: ``mask`` (the policy's own tokens) restricted to the stage's spans.

    Stage 1: policy tokens outside ``<plan>``; stage 2: policy tokens inside ``<plan>``; stage 3: all.
    """
    m = mask.bool()
    keep = {1: m & ~plan_mask, 2: m & plan_mask, 3: m}[stage]
    return keep.float()


def reward_term_metrics(parts: Sequence[dict[str, float]], groups: Sequence[int], weights: RewardWeights) -> dict[str, float]:
    """Per reward term: its batch mean (``reward/<term>``, NaN when the stage does not use it), the mean
    within-group std of its weighted value (``reward/group_std/<term>``: how much of the GRPO signal it
    carries), and the correlation of plan quality or following with the outcome across trajectories."""
    out: dict[str, float] = {}
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    for k in TERMS:
        vals = [p[k] for p in parts if k in p]
        if len(vals) != len(parts) or not parts:
            out[f"reward/{k}"] = out[f"reward/group_std/{k}"] = float("nan")
            continue
        x = torch.tensor(vals, dtype=torch.float64) * getattr(weights, k)
        out[f"reward/{k}"] = float(torch.tensor(vals).mean())
        stds = [float(x[idx].std()) for idx in by_group.values() if len(idx) > 1]
        out[f"reward/group_std/{k}"] = sum(stds) / len(stds) if stds else 0.0
    for k in ("plan", "follow"):
        if parts and all(k in p for p in parts) and len(parts) > 2:
            a = torch.tensor([p[k] for p in parts], dtype=torch.float64)
            b = torch.tensor([p["outcome"] for p in parts], dtype=torch.float64)
            ok = bool(a.std() > 0 and b.std() > 0)
            out[f"reward/corr_{k}_outcome"] = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if ok else 0.0
        else:
            out[f"reward/corr_{k}_outcome"] = float("nan")
    return out


class PilotRLTrainer(Trainer):
    """Three-stage progressive GRPO for AdaPlan agents (see the module docstring)."""

    config_class = PilotRLConfig
    name = "pilotrl"
    config: PilotRLConfig

    # ------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.config
        self.judge: PlanJudge = load_judge(cfg.judge)
        self.weights = RewardWeights(cfg.outcome_weight, cfg.follow_weight, cfg.plan_weight, cfg.format_weight,
                                     cfg.overlong_weight)
        self.executor: Policy | None = None
        self.executor_frozen_at: int | None = None
        if cfg.frozen_executor and cfg.stage2_iterations > 0:
            frozen = copy.deepcopy(self.policy.model).requires_grad_(False).eval()
            self.executor = Policy(frozen, self.policy.tokenizer, seed=cfg.seed)
            self.plan_exec_collector = self.build_collector(PlannerExecutor(self.policy, self.executor))

    def build_collector(self, policy: Sampler) -> RolloutCollector:
        """PilotRL's collector (the per-turn AdaPlan records its rewards read)."""
        return PilotCollector(policy, self.envs, self.agent, generator=self.generator,
                              autocast=self.accelerator.autocast, renderer=self.build_renderer(policy),
                              tree=self.tree_spec())

    def sft_env(self) -> gym.Env:
        """A fraction ``sft_oracle_fraction`` of the SFT episodes with oracle plans in the prompt
        (:class:`SFTPlanModes`), the rest writing the plan."""
        frac = self.config.sft_oracle_fraction
        return SFTPlanModes(self.env_fn(), frac) if frac > 0 else self.env_fn()

    def sft_plan_source(self) -> str:
        """The SFT expert's first-turn plan: ``sft_plan_source``."""
        return self.config.sft_plan_source

    @property
    def stage(self) -> int:
        """The stage of the iteration being played (1, 2 or 3)."""
        return self.config.stage_at(self.step)

    def stage_at(self, step: int) -> int:
        return self.config.stage_at(step)

    # ---------------------------------------------------------------------------------- collect
    def collect(self, tasks: Sequence[TaskSpec]) -> tuple[list[Trajectory], RolloutStats]:
        """Play the tasks in the stage's plan mode; stage 2 with the planner + frozen executor."""
        set_plan_mode(self.envs, STAGE_PLAN_MODES[self.stage])
        collector = self.collector
        if self.stage == 2 and self.executor is not None:
            if self.executor_frozen_at is None:  # stage 2 starts: freeze the stage-1 policy as the executor
                self.executor.model.load_state_dict(self.policy.model.state_dict())
                self.executor_frozen_at = self.step
            collector = self.plan_exec_collector
            collector.next_traj_id = self.collector.next_traj_id  # one id sequence across collectors
        self.policy.train(False)
        trajs, stats = collector.collect(tasks, progress=self.phase_progress(f"stage {self.stage} rollouts"))
        self.collector.next_traj_id = collector.next_traj_id
        return trajs, stats

    # ------------------------------------------------------------------------------------ score
    def score(self, batch: RLBatch) -> Tensor:
        """Per-turn rewards of the current stage (:func:`~trainers.pilotrl.rewards.trajectory_reward`)."""
        cfg = self.config
        rewards: list[float] = []
        parts: list[dict[str, float]] = []
        for traj in batch.trajectories:
            r, p = trajectory_reward(traj, self.stage, self.weights, judge=self.judge, max_len=cfg.max_new_tokens,
                                     overlong_buffer=cfg.overlong_buffer, plan_reward=cfg.plan_reward)
            rewards.extend(r)
            parts.append(p)
        batch.traj_extras[REWARD_PARTS] = parts
        return torch.tensor(rewards, dtype=torch.float32)

    # ---------------------------------------------------------------------------------- weights
    def token_weights(self, batch: RLBatch) -> Tensor:
        """The stage's tokens (:func:`stage_token_weights`) over the ``<plan>`` masks of the responses."""
        width = batch.mask.shape[1]
        plan = tag_token_masks_batch(self.policy.tokenizer, batch.response_ids, ("plan",), width=width)["plan"]
        batch.extras[PLAN_MASK] = plan
        return stage_token_weights(self.stage, batch.mask, plan)

    # -------------------------------------------------------------------------------------- log
    def metrics(self, batch: RLBatch, rollout: RolloutStats, update: UpdateStats) -> dict[str, float]:
        m = super().metrics(batch, rollout, update)
        m.update(reward_term_metrics(batch.traj_extras.get(REWARD_PARTS, []), [t.group_id for t in batch.trajectories],
                                     self.weights))
        plan = batch.extras.need(PLAN_MASK, "PilotRL's metrics")
        w = batch.weights
        turns = batch.turns
        n_tu = max(1, len(turns))
        m.update({
            "pilotrl/stage": float(self.stage),
            "pilotrl/trained_plan_tokens": float((w * plan).sum()) / n_tu,
            "pilotrl/trained_other_tokens": float((w * ~plan).sum()) / n_tu,
            "pilotrl/plan_turn_rate": sum(bool(t.extras.get(DECLARED)) for t in turns) / n_tu,
            "pilotrl/revision_rate": sum(bool(t.extras.get(DECLARED)) and t.turn_idx > 0 for t in turns) / n_tu,
        })
        return m

    def on_step_end(self, batch: RLBatch, metrics: dict[str, float]) -> None:
        """At a stage boundary (not the last iteration, which the loop evaluates), evaluate valid_unseen."""
        cfg = self.config
        nxt = self.step + 1
        at_boundary = nxt in cfg.stage_bounds()[:2] and nxt < cfg.iterations
        regular = bool(cfg.eval_every) and nxt % cfg.eval_every == 0
        if at_boundary and not regular:
            metrics.update(self.evaluate(nxt))

    def stage_reports(self) -> dict[str, dict[str, dict[str, float]]]:
        """Valid_unseen results per task type after SFT (``sft``) and at the end of each stage that ran
        (``stage1``, ``stage2``, ``stage3``), from the evaluations made so far."""
        by_step = {e["step"]: e["by_type"] for e in self.eval_history}
        names, start = {0: "sft"}, 0
        for k, end in enumerate(self.config.stage_bounds(), 1):
            if end > start:
                names[end] = f"stage{k}"
            start = end
        return {name: by_step[step] for step, name in sorted(names.items()) if step in by_step}

    # ---------------------------------------------------------------------------- checkpoint state
    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        mods = super().checkpoint_modules()
        if self.executor is not None:
            mods["executor"] = self.executor.model
        return mods

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "executor_frozen_at": self.executor_frozen_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        frozen = state.get("executor_frozen_at")
        self.executor_frozen_at = None if frozen is None else int(frozen)
