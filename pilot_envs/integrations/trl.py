"""TRL's ``GRPOTrainer(environment_factory=...)`` on the pilot envs (TRL 1.16; ``pip install -e ".[trl]"``).

What TRL expects of an environment (read from ``trl/trainer/grpo_trainer.py``, 1.16):

- ``environment_factory`` is called with no arguments, once to probe the class and then whenever a batch needs more
  instances than the pool holds; instances are **reused**, each rollout starting with ``reset``.
- ``reset(**row)`` receives the whole dataset row (``prompt`` included); a string it returns is appended to the
  row's last prompt message **with no separator**. :class:`PilotToolEnv` reads ``split``, ``task_index`` and ``seed``
  and ignores the rest.
- Every public function of the class other than ``reset`` and ``get_reward`` is a tool: its name, type hints and
  Google-style docstring become the JSON schema in the system prompt. :class:`PilotToolEnv` has one tool,
  :meth:`~PilotToolEnv.act`; everything else is private or a property (properties are not tools).
- ``get_reward()`` (no arguments) is called once per finished rollout and added as a reward of weight 1, named after
  the class. Here it is the episode's return: the sum of the rewards the env gave for the steps the model took.
- A tool's exception becomes the tool result ``{"error": ...}``; tool results are masked out of the loss.
- The chat template must render tool calls and tool messages, and must be one TRL knows how to parse
  (``add_response_schema``). SmolLM2's own template is refused; :func:`tool_chat_template` installs TRL's copy of
  the Qwen2.5 template, which works with SmolLM2's ChatML tokens (``<|im_start|>``, ``<|im_end|>``).
- All assistant turns and tool results share ``max_completion_length``: a tool result that would overflow it is
  dropped and the rollout ends, **after** the tool (the env) already ran. The tool call itself stays in the trained
  completion, so the return still counts exactly the commands whose calls the model is trained on (each executed
  command's call is in the completion, whether or not its result fitted); observations are kept compact (the
  actions list, a character cap) so that this rarely happens.

The same token layout (prompt; assistant turns trained, tool results masked) is what :func:`conversation_ids`
builds for supervised warm starts, and :func:`play` runs the same loop as TRL (generate, parse with TRL's parser,
call the tool, append the tool result) for evaluation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = [
    "DONE_TEXT",
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "Episode",
    "PilotToolEnv",
    "conversation_ids",
    "environment_factory",
    "expert_conversation",
    "first_messages",
    "play",
    "sft_conversations",
    "task_dataset",
    "task_rows",
    "tool_chat_template",
]

SYSTEM_PROMPT = ("You are a household robot. Solve the task by calling the act tool with one action at a time, "
                 "chosen from the listed actions. When the task is complete, answer Done.")
"""The rows' system message (without one, the Qwen2.5 template writes its own "You are Qwen" line)."""
USER_PROMPT = ""
"""The rows' user message; :meth:`PilotToolEnv.reset`'s observation is appended to it by TRL."""
DONE_TEXT = "Done."
"""The final answer of an expert conversation (a turn without a tool call ends a TRL rollout)."""

_UNLISTED = ("help", "look", "inventory")
_UNLISTED_PREFIXES = ("examine ",)
_BANNER = re.compile(r"^-=.*=-\s*$")


class PilotToolEnv:
    """A text env as TRL's tool environment: ``reset(**row)``, one tool ``act(command)``, ``get_reward()``.

    Observations are compact: the env's feedback (the welcome banner removed, capped at ``max_chars``
    characters), then the actions that do something now (``actions="local"``: every action at reset, then all but
    ``go to ...``, whose places the first observation already named; ``"all"``; ``"none"``), and ``Task complete.``
    or ``Step limit reached.`` when the episode ends. After the end, ``act`` answers without stepping.

    Args:
        env_id: a registered text env (default ``PilotALFWorldSmall-v0``).
        env_kwargs: ``gym.make`` keyword arguments (e.g. ``reward_mode="progress"``, ``success_reward=10.0``).
        max_turns: env steps per episode (None: only the env's own time limit).
        actions: which admissible commands each observation lists.
        max_chars: cap on the feedback text of one observation.
    """

    def __init__(
        self,
        env_id: str = "PilotALFWorldSmall-v0",
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        max_turns: int | None = None,
        actions: str = "local",
        max_chars: int = 400,
    ) -> None:
        import pilot_envs  # noqa: F401  (registers the ids)

        if actions not in ("local", "all", "none"):
            raise ValueError(f"actions must be 'local', 'all' or 'none', got {actions!r}")
        if max_turns is not None and max_turns < 1:
            raise ValueError(f"max_turns must be >= 1 or None, got {max_turns}")
        self._env = gym.make(env_id, **dict(env_kwargs or {}))
        self._max_turns = max_turns
        self._actions = actions
        self._max_chars = max_chars
        self._info: dict[str, Any] = {}
        self._transcript: list[tuple[str, str]] = []
        self._return = 0.0
        self._done = True
        self._ended = ""
        self._started = False

    # -- TRL's interface ------------------------------------------------------------------------------------------

    def reset(self, **row: Any) -> str:
        """Start the task a dataset row names (``split`` and ``task_index``, optional ``seed``; other keys, such as
        TRL's ``prompt``, are ignored) and return its first observation (room, task, actions)."""
        options: dict[str, Any] = {}
        if row.get("split") is not None:
            options["split"] = str(row["split"])
        if row.get("task_index") is not None:
            options["task_index"] = int(row["task_index"])
        seed = row.get("seed")
        obs, info = self._env.reset(seed=None if seed is None else int(seed), options=options or None)
        self._info = dict(info)
        self._transcript = []
        self._return = 0.0
        self._done = False
        self._ended = ""
        self._started = True
        return self._render(obs, first=True)

    def act(self, command: str) -> str:
        """Carry out one action in the household and describe what happens.

        Args:
            command: One action from the list, e.g. "go to cabinet 1" or "take mug 1 from cabinet 1".

        Returns:
            What happens, then the actions available now.
        """
        if not self._started:
            return "No task yet: the environment must be reset first."
        if not isinstance(command, str):
            return f'act takes one action as text, e.g. "go to cabinet 1" (got {type(command).__name__}).'
        if self._done:
            return f"The episode is over ({self._ended}); no action is taken."
        obs, reward, terminated, truncated, info = self._env.step(command)
        self._info = dict(info)
        self._return += float(reward)
        if info.get("won") or info.get("lost") or terminated:
            self._done, self._ended = True, "Task complete." if info.get("won") else "The task failed."
        elif truncated or (self._max_turns is not None and len(self._transcript) + 1 >= self._max_turns):
            self._done, self._ended = True, "Step limit reached."
        text = self._render(obs, first=False)
        self._transcript.append((command, text))
        return text

    def get_reward(self) -> float:
        """The episode's return: the sum of the env's rewards over the actions taken since ``reset``."""
        return self._return

    # -- read-only state (properties are not tools) ----------------------------------------------------------------

    @property
    def won(self) -> bool:
        return bool(self._info.get("won", False))

    @property
    def progress(self) -> float:
        return float(self._info.get("progress", 0.0))

    @property
    def done(self) -> bool:
        return self._done

    @property
    def num_steps(self) -> int:
        """Env steps taken since ``reset`` (calls of ``act`` that reached the env)."""
        return len(self._transcript)

    @property
    def transcript(self) -> tuple[tuple[str, str], ...]:
        """``(command, observation)`` per env step since ``reset``."""
        return tuple(self._transcript)

    @property
    def info(self) -> dict[str, Any]:
        """The env's latest ``info`` (``expert_action``, ``task_type``, ...)."""
        return dict(self._info)

    # -- rendering -------------------------------------------------------------------------------------------------

    def _render(self, obs: Mapping[str, Any], *, first: bool) -> str:
        lines = [ln for ln in str(obs.get("text", "")).strip().splitlines() if not _BANNER.match(ln)]
        text = "\n".join(lines).strip()
        text = re.sub(r"\n{3,}", "\n\n", text)
        if len(text) > self._max_chars:
            text = text[: self._max_chars - 3].rstrip() + "..."
        if self._done:
            return f"{text}\n{self._ended}"
        if self._actions == "none":
            return text
        commands = [str(c) for c in obs.get("admissible_commands", ()) or ()]
        commands = [c for c in commands if c not in _UNLISTED and not c.startswith(_UNLISTED_PREFIXES)]
        if self._actions == "local" and not first:
            commands = [c for c in commands if not c.startswith("go to ")]
            return f"{text}\nActions: {'; '.join(commands)}; go to a place." if commands else text
        return f"{text}\nActions: {'; '.join(commands)}." if commands else text


def environment_factory(env_id: str = "PilotALFWorldSmall-v0", **kwargs: Any) -> Callable[[], PilotToolEnv]:
    """The no-argument callable TRL's ``environment_factory`` takes: each call makes a fresh :class:`PilotToolEnv`
    with these arguments (``env_kwargs``, ``max_turns``, ``actions``, ``max_chars``)."""
    PilotToolEnv(env_id, **kwargs)  # fail here, not inside the trainer, on a bad id or argument
    return functools.partial(PilotToolEnv, env_id, **kwargs)


# -- data -----------------------------------------------------------------------------------------------------------


def task_rows(
    split: str,
    n: int | None = None,
    *,
    start: int = 0,
    env_id: str = "PilotALFWorldSmall-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    system_prompt: str = SYSTEM_PROMPT,
    user_prompt: str = USER_PROMPT,
) -> list[dict[str, Any]]:
    """Dataset rows ``{"prompt", "split", "task_index"}`` for tasks ``start .. start+n-1`` of ``split`` (all of it
    from ``start`` when ``n`` is None); the prompt is a system and a user message (the user message gets the
    first observation appended by TRL)."""
    import pilot_envs  # noqa: F401
    from pilot_envs.core.contract import text_env

    env = gym.make(env_id, **dict(env_kwargs or {}))
    try:
        sizes = text_env(env).splits()
    finally:
        env.close()
    if split not in sizes:
        raise ValueError(f"{env_id} has no split {split!r}; it has {sorted(sizes)}")
    stop = sizes[split] if n is None else start + n
    if not 0 <= start < stop <= sizes[split]:
        raise ValueError(f"tasks {start}..{stop - 1} are outside {split!r} (0..{sizes[split] - 1})")
    prompt = [{"role": "system", "content": system_prompt}, {"role": "user", "content": user_prompt}]
    return [{"prompt": [dict(m) for m in prompt], "split": split, "task_index": i} for i in range(start, stop)]


def task_dataset(split: str, n: int | None = None, **kwargs: Any) -> Any:
    """:func:`task_rows` as a ``datasets.Dataset`` (TRL's ``train_dataset`` / ``eval_dataset``)."""
    from datasets import Dataset

    return Dataset.from_list(task_rows(split, n, **kwargs))


def first_messages(row: Mapping[str, Any], observation: str | None) -> list[dict[str, Any]]:
    """The conversation TRL starts a rollout with: the row's prompt, ``observation`` appended to its last message
    (no separator, as TRL does)."""
    messages = [dict(m) for m in row["prompt"]]
    if observation is not None:
        messages[-1] = {**messages[-1], "content": str(messages[-1]["content"]) + observation}
    return messages


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


# -- tokenizer and token layout -------------------------------------------------------------------------------------


def tool_chat_template(tokenizer: Any) -> Any:
    """Give a ChatML tokenizer (SmolLM2, Qwen2.5) TRL's Qwen2.5 chat template and its response parser, left padding
    and a pad token; returns the same tokenizer. TRL refuses SmolLM2's own template (it renders no tool calls) and
    parses tool calls only for templates it knows (``trl.chat_template_utils.add_response_schema``)."""
    from trl.chat_template_utils import add_response_schema, qwen2_5_chat_template

    vocab = tokenizer.get_vocab()
    missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in vocab]
    if missing:
        raise ValueError(f"the Qwen2.5 tool template needs ChatML tokens; this tokenizer lacks {missing}")
    tokenizer.chat_template = qwen2_5_chat_template
    tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if getattr(tokenizer, "response_template", None) is None and getattr(tokenizer, "response_schema", None) is None:
        add_response_schema(tokenizer)
    return tokenizer


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
