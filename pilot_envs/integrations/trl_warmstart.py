"""Warm starts and evaluation for :mod:`pilot_envs.integrations.trl`, in TRL's own layout.

An untrained small model never calls the tool, so every rollout of a GRPO group gets the same reward and nothing is
learned: warm-start it. :func:`expert_conversation` writes the oracle's episode as a tool-calling conversation;
:func:`conversation_ids` lays a conversation out token for token as TRL lays out a rollout (prompt; assistant turns
trained, tool results masked); :func:`sft_conversations` fine-tunes on those tokens. :func:`play` runs TRL's
rollout loop without training (generate, parse with TRL's parser, call the tool, append the result), for
evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilot_envs.integrations.trl import DONE_TEXT, PilotToolEnv, first_messages

__all__ = ["Episode", "conversation_ids", "expert_conversation", "play", "sft_conversations"]


def _call(command: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "act", "arguments": {"command": command}}}]}


def expert_conversation(env: PilotToolEnv, row: Mapping[str, Any], *, max_turns: int | None = None) -> list[dict]:
    """The oracle's episode on ``row``'s task as a tool-calling conversation: the first messages, then per expert
    command an assistant tool call and its ``tool`` result, and a final ``Done.`` once the task is complete (an
    episode cut by ``max_turns`` or the env ends without it)."""
    messages = first_messages(row, env.reset(**row))
    turns = 0
    while not env.done and env.info.get("expert_action") and (max_turns is None or turns < max_turns):
        command = str(env.info["expert_action"])
        messages += [_call(command), {"role": "tool", "name": "act", "content": env.act(command)}]
        turns += 1
    if env.won:
        messages.append({"role": "assistant", "content": DONE_TEXT})
    return messages


# -- token layout ---------------------------------------------------------------------------------------------------


def _ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None, **kw: Any) -> list[int]:
    out = tokenizer.apply_chat_template(list(messages), tools=list(tools) if tools else None, tokenize=True,
                                        return_dict=False, **kw)
    return list(out["input_ids"] if isinstance(out, Mapping) else out)


def _tool_suffix_ids(tokenizer: Any, tool_messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The tokens TRL appends after an assistant tool call for these tool results (its ``_get_tool_suffix_ids``)."""
    calls = [{"type": "function", "function": {"name": tool_messages[0]["name"], "arguments": {}}}]
    dummy = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "", "tool_calls": calls}]
    prefix = _ids(tokenizer, dummy, None)
    full = _ids(tokenizer, [*dummy, *tool_messages], None, add_generation_prompt=True)
    eos = [i for i, t in enumerate(prefix) if t == tokenizer.eos_token_id]
    if eos:
        prefix = prefix[: eos[-1] + 1]
    if full[: len(prefix)] != prefix:
        raise ValueError("the chat template does not preserve prefixes around tool messages")
    return full[len(prefix):]


def conversation_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]],
                     tools: Sequence[Any]) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, completion_ids, completion_mask)`` of a tool-calling conversation laid out as TRL lays out a
    rollout: the prompt up to the first assistant turn (with the generation prompt), then each assistant turn up to
    and including its end-of-turn token (mask 1) followed by the tokens of its tool results (mask 0)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), None)
    if first is None:
        raise ValueError("the conversation has no assistant turn")
    prompt = _ids(tokenizer, messages[:first], tools, add_generation_prompt=True)
    completion: list[int] = []
    mask: list[int] = []
    i = first
    while i < len(messages):
        if messages[i]["role"] != "assistant":
            raise ValueError(f"message {i} is {messages[i]['role']!r} where an assistant turn was expected")
        before = _ids(tokenizer, messages[:i], tools, add_generation_prompt=True)
        full = _ids(tokenizer, messages[: i + 1], tools)
        if full[: len(before)] != before:
            raise ValueError("the chat template does not preserve prefixes")
        turn = full[len(before):]
        if tokenizer.eos_token_id in turn:
            turn = turn[: turn.index(tokenizer.eos_token_id) + 1]
        completion += turn
        mask += [1] * len(turn)
        j = i + 1
        while j < len(messages) and messages[j]["role"] == "tool":
            j += 1
        if j > i + 1:
            suffix = _tool_suffix_ids(tokenizer, messages[i + 1: j])
            completion += suffix
            mask += [0] * len(suffix)
        i = j
    return prompt, completion, mask


# -- evaluation: TRL's rollout loop without training -----------------------------------------------------------------


@dataclass
class Episode:
    """One played rollout: outcome, env steps, tokens and the messages the model produced and saw."""

    task_index: int
    split: str
    task_type: str
    won: bool
    progress: float
    ret: float
    steps: int
    completion_tokens: int
    model_tokens: int
    messages: list[dict[str, Any]] = field(default_factory=list)


def play(
    model: Any,
    tokenizer: Any,
    envs: Sequence[PilotToolEnv],
    rows: Sequence[Mapping[str, Any]],
    *,
    max_new_tokens: int = 48,
    max_completion_length: int = 1024,
    temperature: float = 0.4,
    seed: int = 0,
    on_turn: Callable[[int, int], None] | None = None,
) -> list[Episode]:
    """Play each row once with ``envs[i]`` (as many envs as rows) the way TRL's GRPOTrainer rolls out: all active
    rollouts in one ``generate`` per turn, the completion parsed by TRL's ``parse_response``, every tool call run, its
    result's tokens appended; a rollout ends on a turn without a tool call, when its episode ends, or when its
    completion passes ``max_completion_length`` tokens. Sampling at ``temperature`` (0: greedy) from a seeded
    generator that leaves the global RNG untouched. ``on_turn(turn, active)`` is called before each turn."""
    import torch
    from trl.chat_template_utils import parse_response

    if len(envs) < len(rows):
        raise ValueError(f"need one env per row: {len(envs)} envs for {len(rows)} rows")
    tools = [envs[0].act]
    messages = [first_messages(row, env.reset(**row)) for env, row in zip(envs, rows, strict=False)]
    prompts = [_ids(tokenizer, m, tools, add_generation_prompt=True) for m in messages]
    ids = [list(p) for p in prompts]
    model_tokens = [0] * len(rows)
    active = list(range(len(rows)))
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    turn = 0
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            while active:
                if on_turn is not None:
                    on_turn(turn, len(active))
                width = max(len(ids[i]) for i in active)
                batch = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in active], device=device)
                attn = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in active], device=device)
                sample = temperature > 0
                out = model.generate(input_ids=batch, attention_mask=attn, max_new_tokens=max_new_tokens,
                                     do_sample=sample, temperature=temperature if sample else None, top_p=None,
                                     top_k=None, eos_token_id=eos, pad_token_id=pad)
                still = []
                for row_i, i in enumerate(active):
                    new = out[row_i, width:].tolist()
                    if eos in new:
                        new = new[: new.index(eos) + 1]
                    budget = max_completion_length - (len(ids[i]) - len(prompts[i]))
                    new = new[: max(budget, 0)]
                    model_tokens[i] += len(new)
                    parsed = parse_response(tokenizer, new, prefix=ids[i], tools=tools)
                    messages[i].append(parsed)
                    ids[i] += new
                    calls = parsed.get("tool_calls") or []
                    if not calls or budget <= len(new):
                        continue
                    results = []
                    for call in calls:
                        fn = call.get("function", call)
                        try:
                            if fn.get("name") != "act":
                                raise ValueError(f"Tool {fn.get('name')} not found.")
                            result: Any = envs[i].act(**(fn.get("arguments") or {}))
                        except Exception as e:  # TRL turns a failing tool into this result
                            result = {"error": str(e)}
                        results.append({"role": "tool", "name": fn.get("name", "act"), "content": str(result)})
                    suffix = _tool_suffix_ids(tokenizer, results)
                    if len(ids[i]) + len(suffix) - len(prompts[i]) > max_completion_length:
                        continue  # TRL drops a result that overflows (the tool already ran) and ends the rollout
                    messages[i] += results
                    ids[i] += suffix
                    if not envs[i].done:
                        still.append(i)
                active = still
                turn += 1
    finally:
        model.train(was_training)
    return [
        Episode(task_index=int(row.get("task_index", -1)), split=str(row.get("split", "")),
                task_type=str(env.info.get("task_type", "")), won=env.won, progress=env.progress,
                ret=env.get_reward(), steps=env.num_steps, completion_tokens=len(ids[i]) - len(prompts[i]),
                model_tokens=model_tokens[i], messages=messages[i])
        for i, (env, row) in enumerate(zip(envs, rows, strict=False))
    ]


# -- supervised warm start ------------------------------------------------------------------------------------------


def sft_conversations(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Mapping[str, Any]]],
    tools: Sequence[Any],
    *,
    steps: int,
    batch_size: int = 4,
    lr: float = 5e-5,
    seed: int = 0,
    max_grad_norm: float = 1.0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` on tool-calling conversations (e.g. :func:`expert_conversation`): AdamW, ``steps``
    optimizer steps of ``batch_size`` conversations drawn without replacement (reshuffled each pass), loss = the
    token-mean negative log-likelihood of the assistant tokens of :func:`conversation_ids` (tool results and the
    prompt are context only). Returns each step's loss; ``on_step(step, loss)`` after each step."""
    import numpy as np
    import torch

    if not conversations:
        raise ValueError("no conversations to train on")
    data = [conversation_ids(tokenizer, c, tools) for c in conversations]
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    for step in range(steps):
        while len(order) < batch_size:
            order += rng.permutation(len(data)).tolist()
        rows, order = order[:batch_size], order[batch_size:]
        total = sum(sum(data[r][2]) for r in rows)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for r in rows:  # one conversation per forward: no padding
            prompt, completion, mask = data[r]
            ids = torch.tensor([prompt + completion], device=device)
            labels = torch.tensor([[-100] * len(prompt) + [t if m else -100 for t, m in zip(completion, mask,
                                                                                                strict=True)]],
                                  device=device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            loss = nll / total
            loss.backward()
            loss_sum += float(loss.detach())
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(loss_sum)
        if on_step is not None:
            on_step(step, loss_sum)
    opt.zero_grad(set_to_none=True)
    model.eval()
    return losses
