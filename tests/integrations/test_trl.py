"""pilot_envs.integrations.trl: the wrapper TRL's ``GRPOTrainer(environment_factory=...)`` drives, the token layout
of its warm start, and one real TRL GRPO step whose rewards must come from the env instances.

The wrapper tests need only the env; the tokenizer tests SmolLM2's tokenizer; the training tests SmolLM2 itself
(the offline tiny model has no ChatML tokens, so TRL cannot parse its tool calls): a few SFT steps on one short
oracle conversation teach it to call the tool, then one GRPO step runs with tiny lengths (about a minute on one
core)."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest

import pilot_envs  # noqa: F401
from pilot_envs.integrations.trl import (
    DONE_TEXT,
    PilotToolEnv,
    environment_factory,
    first_messages,
    task_dataset,
    task_rows,
    tool_chat_template,
)
from pilot_envs.integrations.trl_warmstart import conversation_ids, expert_conversation, play, sft_conversations

PROGRESS = {"reward_mode": "progress", "success_reward": 10.0, "invalid_action_penalty": 0.1}


def row(i: int = 0, split: str = "train") -> dict[str, Any]:
    return task_rows(split, 1, start=i)[0]


# ----------------------------------------------------------------------------------------------- the wrapper


def test_only_act_is_a_tool() -> None:
    """TRL makes a tool of every public function of the class except reset and get_reward."""
    public = {n for n, _ in inspect.getmembers(PilotToolEnv, predicate=inspect.isfunction) if not n.startswith("_")}
    assert public == {"reset", "act", "get_reward"}
    doc = inspect.getdoc(PilotToolEnv.act) or ""
    assert "Args:" in doc and "command:" in doc and "Returns:" in doc
    assert inspect.signature(PilotToolEnv.act).parameters["command"].annotation in (str, "str")


def test_reset_takes_the_whole_row() -> None:
    env = PilotToolEnv()
    r0, r3 = row(0), row(3)
    first = env.reset(**r0, environment="x", anything=[1, 2])  # r0 holds "prompt" too, as TRL passes it
    ref = gym.make("PilotALFWorldSmall-v0")
    obs, _ = ref.reset(options={"split": "train", "task_index": 0})
    assert obs["task"] in first and "Welcome" not in first and "Actions: go to" in first
    assert env.reset(**r3) != first and env.reset(**r0) == first
    assert env.info["split"] == "train"


def test_act_on_bad_input_is_clear_and_safe() -> None:
    env = PilotToolEnv(env_kwargs=PROGRESS)
    assert "reset" in env.act("look")  # before any reset: no env step
    env.reset(**row(1))
    assert "as text" in env.act(7) and env.num_steps == 0  # type: ignore[arg-type]
    out = env.act("dance with the fridge")
    assert out.startswith("Nothing happens.") and env.num_steps == 1
    assert env.info["action_valid"] is False
    assert env.get_reward() == pytest.approx(-0.1)


@pytest.mark.parametrize("env_kwargs", [{}, PROGRESS, {"reward_mode": "milestone"}])
def test_reward_is_the_env_return(env_kwargs: dict[str, Any]) -> None:
    """get_reward is the sum of the env's own rewards for the commands act ran, step for step against gym.make."""
    env = PilotToolEnv(env_kwargs=env_kwargs)
    ref = gym.make("PilotALFWorldSmall-v0", **env_kwargs)
    for i in (0, 5):
        env.reset(**row(i))
        _, info = ref.reset(options={"split": "train", "task_index": i})
        total = 0.0
        for k in range(40):
            command = "go to nowhere" if k == 1 else str(info["expert_action"])
            env.act(command)
            _, rew, term, trunc, info = ref.step(command)
            total += float(rew)
            assert env.get_reward() == pytest.approx(total)
            assert env.progress == info["progress"] and env.won == info["won"]
            if term or trunc:
                break
        assert env.won and env.done
        if env_kwargs == PROGRESS:  # potential-based shaping telescopes: 10 * won + progress - 0.1 * invalid
            assert env.get_reward() == pytest.approx(10.0 + 1.0 - 0.1)
        if not env_kwargs:  # ALFWorld's sparse reward: won
            assert env.get_reward() == 1.0


def test_episode_end_stops_stepping() -> None:
    env = PilotToolEnv(max_turns=2)
    env.reset(**row(2))
    env.act("look")
    last = env.act("inventory")
    assert last.endswith("Step limit reached.") and env.done
    assert "episode is over" in env.act(str(env.info["expert_action"])) and env.num_steps == 2


def test_factory_and_rows() -> None:
    make = environment_factory(env_kwargs=PROGRESS, max_turns=3)
    a, b = make(), make()
    assert isinstance(a, PilotToolEnv) and a is not b
    rows = task_rows("valid_unseen", 3, start=2)
    assert [r["task_index"] for r in rows] == [2, 3, 4] and rows[0]["prompt"][0]["role"] == "system"
    with pytest.raises(ValueError, match="split"):
        task_rows("nope", 1)
    with pytest.raises(ValueError, match="outside"):
        task_rows("valid_unseen", 5, start=132)
    with pytest.raises(ValueError, match="actions"):
        PilotToolEnv(actions="some")
    assert task_dataset("train", 2)[1]["task_index"] == 1


def test_expert_conversation_wins() -> None:
    env = PilotToolEnv(env_kwargs=PROGRESS)
    msgs = expert_conversation(env, row(4))
    assert msgs[:2] == first_messages(row(4), msgs[1]["content"])
    calls = [m for m in msgs if m.get("tool_calls")]
    assert len(calls) == env.num_steps and env.won and msgs[-1] == {"role": "assistant", "content": DONE_TEXT}
    assert msgs[-2]["content"].endswith("Task complete.")


# ------------------------------------------------------------------------------------------ SmolLM2 (tokenizer)


def _smollm2_missing() -> str | None:
    from trainers.core.models import SMOLLM2_INSTALL, smollm2_gguf

    try:
        smollm2_gguf()
    except FileNotFoundError as exc:
        return f"needs SmolLM2: {exc}"
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        return f"needs the gguf package: {SMOLLM2_INSTALL}"
    return None


needs_smollm2 = pytest.mark.skipif(_smollm2_missing() is not None, reason=str(_smollm2_missing()))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from trainers.core.models import resolve_model

    return tool_chat_template(AutoTokenizer.from_pretrained(resolve_model("smollm2"), local_files_only=True))


@needs_smollm2
def test_trl_accepts_the_template(tokenizer: Any) -> None:
    """TRL refuses SmolLM2's own template for tools; with TRL's Qwen2.5 template it renders and parses tool calls."""
    from transformers import AutoTokenizer
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    from trainers.core.models import resolve_model

    own = AutoTokenizer.from_pretrained(resolve_model("smollm2"), local_files_only=True)
    assert not supports_tool_calling(own)
    assert supports_tool_calling(tokenizer) and is_chat_template_prefix_preserving(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.padding_side == "left"


@needs_smollm2
def test_conversation_ids_follow_trl_layout(tokenizer: Any) -> None:
    """Each assistant span of the warm-start layout parses (with TRL's parser) to the oracle's command; tool results
    are masked; the whole layout equals the template's rendering of the conversation."""
    from trl.chat_template_utils import parse_response

    env = PilotToolEnv()
    msgs = expert_conversation(env, row(1))
    prompt, completion, mask = conversation_ids(tokenizer, msgs, [env.act])
    full = tokenizer.apply_chat_template(msgs, tools=[env.act], tokenize=True, return_dict=False)
    assert prompt + completion == list(full)[: len(prompt) + len(completion)]
    spans, cur = [], []
    for t, m in zip(completion, mask, strict=True):
        if m:
            cur.append(t)
        elif cur:
            spans.append(cur)
            cur = []
    spans.append(cur)
    commands = [c for c, _ in env.transcript]
    assert len(spans) == len(commands) + 1
    for span, command in zip(spans, commands, strict=False):
        parsed = parse_response(tokenizer, span, prefix=prompt, tools=[env.act])
        assert parsed["tool_calls"][0]["function"] == {"name": "act", "arguments": {"command": command}}
    assert tokenizer.decode(spans[-1]) == f"{DONE_TEXT}<|im_end|>"


# ------------------------------------------------------------------------------------------ SmolLM2 (training)


@pytest.fixture(scope="module")
def tool_model(tokenizer: Any) -> Iterator[Any]:
    """SmolLM2 after a few SFT steps on one short oracle conversation: enough to make it call the tool."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.core.models import resolve_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2"), dtype=torch.float32,
                                                 local_files_only=True)
    env = PilotToolEnv(max_turns=2)
    conv = expert_conversation(env, row(1), max_turns=2)
    losses = sft_conversations(model, tokenizer, [conv], [env.act], steps=6, batch_size=1, lr=1e-4)
    assert losses[-1] < losses[0]
    yield model
    torch.set_num_threads(threads)


@needs_smollm2
def test_play_calls_the_tool(tool_model: Any, tokenizer: Any) -> None:
    envs = [PilotToolEnv(env_kwargs=PROGRESS, max_turns=2)]
    (ep,) = play(tool_model, tokenizer, envs, [row(1)], max_new_tokens=40, temperature=0.0)
    assert ep.steps >= 1 and ep.ret == pytest.approx(envs[0].get_reward())
    assert any(m.get("tool_calls") for m in ep.messages) and any(m["role"] == "tool" for m in ep.messages)
    assert ep.model_tokens < ep.completion_tokens  # tool results are part of the completion, not the model's tokens


@needs_smollm2
def test_one_trl_grpo_step_rewards_come_from_the_envs(tool_model: Any, tokenizer: Any, tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One real GRPOTrainer step: the model's tool calls step the env instances, and the reward TRL logs is the
    mean of what their get_reward returned (which is the env's own return)."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    made: list[SpyEnv] = []
    scored: list[tuple[int, float]] = []
    kept: list[dict[str, float]] = []

    class SpyEnv(PilotToolEnv):
        def __init__(self) -> None:
            super().__init__(env_kwargs=PROGRESS, max_turns=2)
            self.calls = 0
            made.append(self)

        def act(self, command: str) -> str:
            self.calls += 1
            return super().act(command)

        act.__doc__ = PilotToolEnv.act.__doc__

        def get_reward(self) -> float:
            reward = super().get_reward()
            invalid = sum(c.startswith("Nothing happens.") for _, c in self.transcript)
            assert reward == pytest.approx(10.0 * self.won + self.progress - 0.1 * invalid)
            scored.append((self.num_steps, reward))
            return reward

    class Keep(TrainerCallback):
        def on_log(self, *_: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "reward" in logs:
                kept.append(dict(logs))

    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=200, max_tool_calling_iterations=2, generation_kwargs={"max_new_tokens": 40},
                      temperature=0.3, learning_rate=1e-6, bf16=False, use_cpu=True, activation_checkpointing=False,
                      report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer = GRPOTrainer(model=tool_model, processing_class=tokenizer, args=args,
                              train_dataset=task_dataset("train", 1, start=1), environment_factory=SpyEnv,
                              callbacks=[Keep()])
        trainer.train()
    assert len(scored) == 2  # one get_reward per rollout, from the pooled instances
    (log,) = kept
    steps = sum(n for n, _ in scored)
    assert steps >= 1, "the SFT'd model made no tool call, so no env was stepped"
    assert log["tools/call_frequency"] * 2 == pytest.approx(sum(e.calls for e in made))  # TRL's calls reached the envs
    assert all(e.num_steps <= min(e.calls, 2) for e in made)
    assert log["reward"] == pytest.approx(sum(r for _, r in scored) / 2, abs=1e-4)
    assert log["rewards/SpyEnv/mean"] == pytest.approx(log["reward"], abs=1e-4)
    assert os.environ["TRL_EXPERIMENTAL_SILENCE"] == "1"
