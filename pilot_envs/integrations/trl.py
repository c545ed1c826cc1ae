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

Warm-starting a model for it (oracle episodes as tool-calling conversations in TRL's token layout, SFT on them)
and evaluating it the way TRL rolls out: :mod:`pilot_envs.integrations.trl_warmstart`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

__all__ = [
    "DONE_TEXT",
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "PilotToolEnv",
    "environment_factory",
    "first_messages",
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
