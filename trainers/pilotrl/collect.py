"""PilotRL rollouts: the AdaPlan records each stage needs, and stage 2's planner + frozen executor.

:class:`PilotCollector` is the core :class:`~trainers.core.rollout.RolloutCollector` that also records, per
turn (``Turn.extras``), what the stage rewards read: the goal sentence, the plan shown in the prompt, the plan
in effect after the step, whether the turn declared a plan, the number of milestones, and how many of the
response's tokens the trained policy wrote.

Stage 2 ("make good plans") trains only the planner, and the plan's reward must come from executing it with
the frozen stage-1 executor. :class:`PlannerExecutor` makes each turn's response in two parts:

1. the trained policy (the *planner*) writes the opening of the response and stops at the first ``</plan>``
   (it wrote or revised the plan), ``<think>`` or ``<action>`` (it chose to keep the plan in effect);
2. the frozen executor (the stage-1 policy, a copy taken when stage 2 starts) continues that same response
   from the planner's last token: the reasoning and the action (its own ``max_new_tokens`` budget, the
   same budget it had in stage 1 for that part).

The response the env receives, and the row trained, is the concatenation; the turn's ``response_mask``
marks the planner's tokens only (stage 2 then trains the ``<plan>`` spans among them), and the executor's
tokens carry the executor's log-probs, which are never trained. A planner that ends its response (eos)
before writing any action leaves the whole turn to the executor (its eos is dropped). Because the executor
continues the very text the planner wrote, it sees the plan exactly as it will see it in later prompts
(``plan_mode="agent"`` shows the declared plan), which is where the stage-1 executor saw its oracle plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pilot_envs.core.protocol import parse_action
from trainers.core.policy import Generation, Sampler
from trainers.core.rollout import RolloutCollector

__all__ = ["COVERAGE", "DECLARED", "DONE", "NUM_SUBGOALS", "PLAN", "PLANNER_STOPS", "PLAN_SHOWN", "POLICY_TOKENS", "TASK", "PilotCollector",
           "PlanExecGeneration", "PlannerExecutor"]

PLANNER_STOPS: tuple[str, ...] = ("</plan>", "<think>", "<action>")
"""Where the planner's part of a response ends."""


@dataclass
class PlanExecGeneration(Generation):
    """A response written by two models: the first ``planner_tokens`` tokens by the planner."""

    planner_tokens: int = 0


class PlannerExecutor:
    """A :class:`~trainers.core.policy.Sampler` made of two policies: the planner writes each response's plan
    segment, the executor the rest (see the module docstring). Tokenizer, chat template and encoding are the
    planner's (the two must share a tokenizer)."""

    def __init__(self, planner: Sampler, executor: Sampler, stops: Sequence[str] = PLANNER_STOPS) -> None:
        if planner.tokenizer is not executor.tokenizer and planner.tokenizer.get_vocab() != executor.tokenizer.get_vocab():
            raise ValueError("planner and executor must share a tokenizer")
        self.planner = planner
        self.executor = executor
        self.stops = tuple(stops)
        self.tokenizer = planner.tokenizer
        self.device = planner.device
        self.pad_token_id = planner.pad_token_id
        self.eos_token_ids = planner.eos_token_ids

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        return self.planner.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, **kwargs)

    def encode(
        self, texts: Sequence[str], max_tokens: int | None = None, truncation_side: str = "left"
    ) -> list[list[int]]:
        return self.planner.encode(texts, max_tokens, truncation_side)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.planner.decode(ids, skip_special_tokens=skip_special_tokens)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        stop_strings: Sequence[str] | None = None,
    ) -> list[PlanExecGeneration]:
        """Planner part then executor part for every prompt, each phase one batched ``generate``."""
        if seed is not None:
            generator = torch.Generator(device=self.planner.device).manual_seed(seed)
        first = self.planner.generate(prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature,
                                      top_p=top_p, generator=generator, stop_strings=self.stops)
        heads: list[tuple[list[int], list[float], list[float]]] = []
        for g in first:
            ids, lps, hs = list(g.response_ids), list(g.logprobs), list(g.entropies)
            if g.stop_reason == "eos":  # the planner ended the turn: leave the whole action part to the executor
                ids, lps, hs = ids[:-1], lps[:-1], hs[:-1]
            heads.append((ids, lps, hs))
        cont = [[*p, *ids] for p, (ids, _, _) in zip(prompt_ids, heads, strict=True)]
        second = self.executor.generate(cont, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                        generator=generator, stop_strings=stop_strings)
        out = []
        for (ids, lps, hs), g in zip(heads, second, strict=True):
            full = ids + list(g.response_ids)
            out.append(PlanExecGeneration(response_ids=full, logprobs=lps + list(g.logprobs),
                                          text=self.planner.decode(full), finished=g.finished,
                                          stop_reason=g.stop_reason, entropies=hs + list(g.entropies),
                                          planner_tokens=len(ids)))
        return out


TASK, PLAN_SHOWN, PLAN, DECLARED, NUM_SUBGOALS, POLICY_TOKENS, COVERAGE, DONE = (
    "task", "plan_shown", "plan", "declared", "num_subgoals", "policy_tokens", "coverage", "done")
"""``Turn.extras`` keys of :class:`PilotCollector`: the goal sentence, the plan shown in the prompt, the plan in
effect after the step, whether the turn declared a plan, the number of milestones, the policy's own tokens, and
after the step the milestones the plan in effect covers (``info["plan_coverage"]``) and those reached
(``info["subgoals_done"]``)."""


class PilotCollector(RolloutCollector):
    """The core collector plus the per-turn AdaPlan records PilotRL's rewards and masks read.

    Extras recorded on every turn: :data:`TASK`, :data:`PLAN_SHOWN`, :data:`PLAN`, :data:`DECLARED`,
    :data:`NUM_SUBGOALS`, :data:`POLICY_TOKENS`, :data:`COVERAGE`, :data:`DONE`. With a :class:`PlannerExecutor` as the policy,
    ``response_mask`` is 1 on the planner's tokens only.
    """

    def turn_extras(
        self, obs: Mapping[str, Any], gen: Generation, result: tuple
    ) -> tuple[list[int] | None, dict[str, Any]]:
        after, _, _, _, info = result
        n = len(gen.response_ids)
        mask = None
        if isinstance(gen, PlanExecGeneration):
            mask = [1] * gen.planner_tokens + [0] * (n - gen.planner_tokens)
        return mask, {
            TASK: str(obs.get("task", "")),
            PLAN_SHOWN: tuple(str(s) for s in obs.get("plan", ()) or ()),
            PLAN: tuple(str(s) for s in after.get("plan", ()) or ()),
            DECLARED: bool(parse_action(gen.text).plan),
            NUM_SUBGOALS: len(info.get("subgoals", ()) or ()),
            POLICY_TOKENS: sum(mask) if mask is not None else n,
            COVERAGE: tuple(bool(c) for c in info.get("plan_coverage", ()) or ()),
            DONE: tuple(bool(d) for d in info.get("subgoals_done", ()) or ()),
        }
