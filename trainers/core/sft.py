"""Supervised warm start from the envs' oracle expert.

:func:`expert_samples` plays the expert (``info["expert_action"]``) on tasks and records, per turn, the prompt
the policy would see (the same :class:`~trainers.core.rollout.PromptRenderer` as rollouts, same history
convention) and the response an expert would write in the chosen format
(:func:`~trainers.core.prompts.render_expert_response`):

- ``action``: the oracle's next command;
- ``think``: the milestone being worked on (``"subgoal"``, e.g. ``find a mug``), the format's default
  sentence (``"default"``) or nothing (``"none"``);
- ``plan`` (formats with a plan field, e.g. ``adaplan``): the expert's plan at turn 0 whenever the prompt
  shows no plan, from the plan source the caller names (:data:`PLAN_SOURCES`: ``milestones``, the task's
  milestones ``info["subgoals"]``; ``located``, those milestones with each find step naming where the expert
  finds the object); with ``plan_mode="agent"`` the env then shows that declared plan in later prompts;
- ``subgoal`` (formats with that part): the current milestone; a format may add parts of its own through
  its ``expert`` hook (``trainers/hiper/prompt.py``: ``SWITCH`` when the milestone changed, else ``KEEP``).

The env is stepped with the full rendered response, so the transcript is exactly what the agent would
have produced. :func:`sft_train` minimises the token-mean negative log-likelihood of the response tokens
only (prompt tokens are never trained), with an eos token closing every response.

:func:`expert_corpus` collects env text (observations, commands, tasks, milestones) for building the
offline tiny tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trainers.core.policy import Policy
from trainers.core.prompts import get_format, render_expert_response
from trainers.core.rollout import PromptRenderer, TaskSpec

__all__ = ["PLAN_SOURCES", "SFTSample", "THINK_MODES", "current_milestone", "end_of_turn_id", "expert_corpus", "expert_response", "expert_samples", "sft_train"]

THINK_MODES = ("subgoal", "default", "none")


def _milestones(info: dict[str, Any]) -> list[str]:
    return [str(s) for s in info.get("subgoals", ()) or ()]


def _located(info: dict[str, Any]) -> list[str]:
    from pilot_envs.alfworld.plans import located_plan

    return list(located_plan(_milestones(info), [str(c) for c in info.get("expert_plan", ()) or ()]))


PLAN_SOURCES: dict[str, Callable[[dict[str, Any]], list[str]]] = {"milestones": _milestones, "located": _located}
"""Where the expert's first-turn plan comes from, by name: a function of the turn-0 info returning the plan's
steps. ``milestones``: the task's milestones (``info["subgoals"]``). ``located``: the same steps, each find step
followed by the place where the expert finds the object, ``"find a mug: check cabinet 3"`` (read from the
expert's commands ``info["expert_plan"]``, ALFWorld's grammar; a milestone whose object is never taken from a
named place stays as it is): the plan language of the planning setting (docs/planning.md)."""


@dataclass(frozen=True)
class SFTSample:
    """One supervised turn: prompt ids and target response ids (ending with eos)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_text: str
    task_type: str = ""


def current_milestone(info: dict[str, Any]) -> str | None:
    """The first milestone (``info["subgoals"]``) not yet reached; the last one when all are; None without any."""
    goals = [str(g) for g in info.get("subgoals", ()) or ()]
    done = int(np.sum(np.asarray(info.get("subgoals_done", ()), dtype=np.int64))) if goals else 0
    return goals[done] if done < len(goals) else (goals[-1] if goals else None)


def expert_response(
    fmt: str,
    obs: dict[str, Any],
    info: dict[str, Any],
    *,
    turn_idx: int,
    previous: str | None,
    think: str = "subgoal",
    plan_source: str = "milestones",
) -> tuple[str, str | None]:
    """``(response text, carried value)`` an expert writes for this turn (see the module docstring);
    ``previous`` is the value the format carried so far (None for formats that carry nothing); ``plan_source``
    names the first-turn plan (:data:`PLAN_SOURCES`)."""
    if think not in THINK_MODES:
        raise ValueError(f"think must be one of {THINK_MODES}, got {think!r}")
    if plan_source not in PLAN_SOURCES:
        raise ValueError(f"plan_source must be one of {sorted(PLAN_SOURCES)}, got {plan_source!r}")
    action = str(info["expert_action"])
    milestone = current_milestone(info)
    plan = None
    f = get_format(fmt)
    shown = [str(s) for s in obs.get("plan", ()) or ()]
    if "plan" in f.fields and turn_idx == 0 and not shown:
        plan = PLAN_SOURCES[plan_source](info) or None
    think_text = {"subgoal": milestone, "default": None, "none": ""}[think]
    parts: dict[str, str | None] = {"subgoal": milestone}
    if f.expert is not None:
        parts.update(f.expert({"action": action, "plan": None, "think": think_text, **parts}, turn_idx=turn_idx,
                              previous=previous))
    written = {**parts, "subgoal": milestone or action}
    own = written.pop("plan", None)  # a plan the format's expert wrote itself (e.g. the planner's oracle plan)
    text = render_expert_response(f, action=action, plan=own or plan, think=think_text, **written)
    return text, (parts.get(f.carry) if f.carry is not None else None)


def end_of_turn_id(policy: Any) -> int:
    """The token that closes an SFT target: the tokenizer's own eos when it is one of the model's eos ids
    (Qwen2.5-Instruct: ``<|im_end|>``, not the smaller ``<|endoftext|>``), else the smallest eos id."""
    own = getattr(policy.tokenizer, "eos_token_id", None)
    return own if own in policy.eos_token_ids else min(policy.eos_token_ids)


def expert_samples(
    env: gym.Env,
    tasks: Iterable[TaskSpec],
    render: PromptRenderer,
    *,
    think: str = "subgoal",
    max_turns: int = 50,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    plan_source: str = "milestones",
) -> list[SFTSample]:
    """Play the expert on each task with ``env`` and return one :class:`SFTSample` per expert turn.

    ``render`` fixes the prompt format and the tokenizer; an episode stops when solved, truncated, at
    ``max_turns`` or when the expert has no action.

    ``noise`` (DART, Laskey et al. 2017): after turn 0, with this probability the env is stepped with a
    random admissible command instead of the expert's answer (that step is a mistake, recorded as history
    but not as a target); the expert labels every state it reaches, so the data also shows how to recover
    from mistakes (e.g. leaving a receptacle that does not hold the object). ``rng`` draws the mistakes.
    ``plan_source``: the expert's first-turn plan in formats with a plan part (:data:`PLAN_SOURCES`).
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    rng = rng if rng is not None else np.random.default_rng(0)
    policy = render.policy
    eos = [end_of_turn_id(policy)]
    fmt = render.agent.prompt_format
    out: list[SFTSample] = []
    for task in tasks:
        obs, info = env.reset(seed=task.seed, options=None if task.options is None else dict(task.options))
        history: list[tuple[str, str]] = []
        carried: str | None = None  # what the prompt shows of the format's carried part, if any
        for turn_idx in range(max_turns):
            if not info.get("expert_action"):
                break
            prompt = render(obs, history, carried)
            text, written = expert_response(fmt, obs, info, turn_idx=turn_idx, previous=carried, think=think,
                                            plan_source=plan_source)
            response = policy.encode([text])[0] + eos
            out.append(SFTSample(prompt, response, text, str(info.get("task_type", ""))))
            observation = str(obs.get("text", ""))
            commands = [str(c) for c in obs.get("admissible_commands", ()) or ()]
            if turn_idx > 0 and noise > 0 and commands and rng.random() < noise:
                text = commands[int(rng.integers(len(commands)))]  # a mistake: executed, not a target
            else:
                carried = written or carried
            obs, _, term, trunc, info = env.step(text)
            history.append((observation, str(info.get("command") or text)))
            if term or trunc:
                break
    return out


def expert_corpus(env: gym.Env, tasks: Iterable[TaskSpec], *, max_turns: int = 50) -> list[str]:
    """Text an env emits along expert episodes (feedback, task, admissible commands, milestones, plans),
    for :func:`trainers.core.tiny.tiny_corpus_from_texts`. Envs without an expert get their first
    observation's text only."""
    texts: dict[str, None] = {}

    def add(obs: dict[str, Any], info: dict[str, Any]) -> None:
        for t in (obs.get("text", ""), obs.get("task", ""), *(obs.get("admissible_commands", ()) or ())):
            texts[str(t)] = None
        for t in (*(obs.get("plan", ()) or ()), *(info.get("subgoals", ()) or ())):
            texts[str(t)] = None

    for task in tasks:
        obs, info = env.reset(seed=task.seed, options=None if task.options is None else dict(task.options))
        add(obs, info)
        for _ in range(max_turns):
            if not info.get("expert_action"):
                break
            obs, _, term, trunc, info = env.step(str(info["expert_action"]))
            add(obs, info)
            if term or trunc:
                break
    return [t for t in texts if t]


def sft_train(
    policy: Policy,
    samples: Sequence[SFTSample],
    *,
    epochs: float = 1.0,
    steps: int | None = None,
    lr: float = 1e-3,
    batch_size: int = 16,
    micro_batch_tokens: int = 8192,
    seed: int = 0,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    optimizer: torch.optim.Optimizer | None = None,
    module: torch.nn.Module | None = None,
    backward: Callable[[torch.Tensor], None] | None = None,
    sync: Callable[[], Any] | None = None,
    no_sync: Callable[[], Any] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Minimise the response-token NLL of ``samples`` with AdamW; returns the loss of every optimizer step.

    Args:
        epochs: passes over the data (a fraction stops early, e.g. 0.5 = half the shuffled samples).
        steps: optimizer steps, overriding ``epochs`` (distributed runs pass the same count on every rank).
        batch_size: samples per optimizer step (split into micro-batches of ``micro_batch_tokens``).
        warmup_steps: linear learning-rate warmup; after it the rate decays along a cosine to 10% of ``lr``
            (0: constant ``lr``).
        optimizer: reuse an optimizer (e.g. the RL trainer's); default a fresh AdamW over the policy.
        module / backward / sync / no_sync: hooks for distributed training: the (DDP) module to run, the
            backward call (``accelerator.backward``), a function that synchronises gradients after the
            micro-batches, and a context factory for the micro-batches (``accelerator.no_sync``).
        on_step: called with (step, loss) after each optimizer step.

    The loss of a batch is the token-mean over all its response tokens, whatever the micro-batching.
    """
    if not samples:
        raise ValueError("no SFT samples")
    params = policy.parameters()
    opt = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    n_steps = steps if steps is not None else max(1, math.ceil(epochs * len(samples) / batch_size))
    order: list[int] = []
    losses: list[float] = []
    policy.train()
    base_lrs = [g["lr"] for g in opt.param_groups]
    for step in range(n_steps):
        if warmup_steps:
            scale = _schedule(step, warmup_steps, n_steps)
            for g, lr0 in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr0 * scale
        while len(order) < batch_size:
            order.extend(rng.permutation(len(samples)).tolist())
        rows, order = [samples[i] for i in order[:batch_size]], order[batch_size:]
        total = sum(len(r.response_ids) for r in rows)
        loss_sum = 0.0
        opt.zero_grad(set_to_none=True)
        with (no_sync or nullcontext)():
            for mb in policy.iter_micro_batches([r.prompt_ids for r in rows], [r.response_ids for r in rows],
                                                micro_batch_tokens):
                out = policy.forward_logprobs(mb.prompt_ids, mb.response_ids, module=module)
                loss = -(out.logprobs * out.mask).sum() / total
                (backward or torch.Tensor.backward)(loss)
                loss_sum += float(loss.detach())
        if sync is not None:
            sync()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(loss_sum)
        if on_step is not None:
            on_step(step, loss_sum)
    opt.zero_grad(set_to_none=True)
    if warmup_steps:
        for g, lr0 in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr0
    return losses


def _schedule(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over ``warmup`` steps, then a cosine down to 0.1 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
