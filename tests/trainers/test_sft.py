"""SFT warm start: expert targets per format (plans, switch/subgoal), same prompts as rollouts, response-only
loss, and a model that memorises a few expert turns reproduces them."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

import pilot_envs  # noqa: F401
from pilot_envs.core.protocol import parse_action
from trainers.core.models import resolve_model
from trainers.core.policy import Policy
from trainers.core.rollout import AgentSpec, PromptRenderer, TaskSpec
from trainers.core.sft import expert_corpus, expert_response, expert_samples, sft_train
from trainers.core.tiny import tiny_corpus_from_texts

ENV = "PilotALFWorldSmall-v0"
TASKS = [TaskSpec(21, {"split": "train"}), TaskSpec(22, {"split": "train"})]


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus = expert_corpus(gym.make(ENV), [TaskSpec(i, {"split": "train"}) for i in range(20)])
    return resolve_model("tiny", tmp_path_factory.mktemp("cache"), corpus=tiny_corpus_from_texts(corpus),
                         hidden=48, layers=2, heads=2)


def _samples(policy: Policy, fmt: str, plan_mode: str = "none", think: str = "subgoal", **agent):
    env = gym.make(ENV, plan_mode=plan_mode)
    render = PromptRenderer(policy, AgentSpec(prompt_format=fmt, **agent))
    return expert_samples(env, TASKS, render, think=think), render


def test_think_action_targets_replay_the_expert_and_match_rollout_prompts(policy_path: str) -> None:
    policy = Policy.from_pretrained(policy_path)
    samples, render = _samples(policy, "think_action", history_window=2)
    env = gym.make(ENV)
    eos = sorted(policy.eos_token_ids)[0]
    i = 0
    for task in TASKS:  # replay the expert: same prompts as a rollout would render, targets = expert commands
        obs, info = env.reset(seed=task.seed, options=dict(task.options))
        history, won = [], False
        while info["expert_action"] and not won:
            s = samples[i]
            assert s.prompt_ids == render(obs, history, None)
            assert s.response_ids[-1] == eos and policy.decode(s.response_ids) == s.response_text
            assert parse_action(s.response_text).command == info["expert_action"]
            assert s.response_text.startswith(f"<think>{info['subgoals'][int(sum(info['subgoals_done']))]}</think>")
            history.append((obs["text"], info["expert_action"]))
            obs, _, won, _, info = env.step(s.response_text)
            i += 1
        assert won, "the rendered expert responses solve the task"
    assert i == len(samples)


def test_adaplan_writes_the_plan_once_and_the_env_shows_it(policy_path: str) -> None:
    policy = Policy.from_pretrained(policy_path)
    samples, _ = _samples(policy, "adaplan", plan_mode="agent")
    first = [s for s in samples if "<plan>Step 1:" in s.response_text]
    assert len(first) == len(TASKS), "exactly one plan per episode, at turn 0"
    later = policy.decode(samples[1].prompt_ids)
    assert "Your current plan is: Step 1:" in later
    oracle, _ = _samples(policy, "adaplan", plan_mode="oracle")
    assert not any("<plan>" in s.response_text for s in oracle), "a given (oracle) plan is not rewritten"


def test_hiper_switches_when_the_subgoal_changes(policy_path: str) -> None:
    policy = Policy.from_pretrained(policy_path)
    render = PromptRenderer(policy, AgentSpec(prompt_format="hiper", history_window=1))
    for task in TASKS:
        samples = expert_samples(gym.make(ENV), [task], render)
        parsed = [parse_action(s.response_text) for s in samples]
        assert parsed[0].switch == "SWITCH" and parsed[0].subgoal
        for prev, cur in itertools.pairwise(parsed):
            assert (cur.switch == "KEEP") == (cur.subgoal == prev.subgoal)
        assert f"Your current subgoal is: {parsed[0].subgoal}" in policy.decode(samples[1].prompt_ids)
    env = gym.make(ENV)
    obs, info = env.reset(seed=1, options={"split": "train"})
    goal = info["subgoals"][0]
    text, sub = expert_response("hiper", obs, info, turn_idx=3, previous=goal)
    assert sub == goal and text.startswith(f"<switch>KEEP</switch><subgoal>{goal}</subgoal><action>")
    text, _ = expert_response("hiper", obs, info, turn_idx=3, previous="something else")
    assert text.startswith("<switch>SWITCH</switch>")


def test_loss_is_the_response_token_nll_and_memorisation_works(policy_path: str) -> None:
    policy = Policy.from_pretrained(policy_path, seed=0)
    samples, _ = _samples(policy, "think_action", history_window=1)
    samples = samples[:4]
    with torch.no_grad():
        out = policy.forward_logprobs([s.prompt_ids for s in samples], [s.response_ids for s in samples])
    expected = float(-(out.logprobs * out.mask).sum() / out.mask.sum())
    seen: list[float] = []
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    lr_zero = sft_train(policy, samples, steps=1, lr=1e-12, batch_size=4, micro_batch_tokens=400)
    assert lr_zero[0] == pytest.approx(expected, rel=1e-4), "batch loss = token-mean NLL of the responses"
    losses = sft_train(policy, samples, steps=60, lr=5e-3, batch_size=4, on_step=lambda _, x: seen.append(x))
    assert seen == losses and losses[-1] < 0.05 < losses[0]
    assert any(not torch.equal(before[k], v) for k, v in policy.model.state_dict().items())
    gens = policy.generate([s.prompt_ids for s in samples], max_new_tokens=30, temperature=0)
    assert [g.text for g in gens] == [s.response_text for s in samples]


def test_prompt_tokens_get_no_gradient(policy_path: str) -> None:
    """Changing the prompt's own continuation probabilities does not enter the loss: a sample whose response
    is empty except eos has a loss equal to -log p(eos), whatever the prompt tokens' likelihood."""
    policy = Policy.from_pretrained(policy_path)
    samples, _ = _samples(policy, "think_action")
    s = samples[0]
    with torch.no_grad():
        logits = policy.model(torch.tensor([s.prompt_ids + s.response_ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    n = len(s.prompt_ids)
    nll = -sum(float(lp[n - 1 + j, t]) for j, t in enumerate(s.response_ids)) / len(s.response_ids)
    got = sft_train(policy, [s], steps=1, lr=1e-12, batch_size=1)[0]
    assert got == pytest.approx(nll, rel=1e-4)


def test_dart_noise_records_recoveries_not_mistakes(policy_path: str) -> None:
    policy = Policy.from_pretrained(policy_path)
    render = PromptRenderer(policy, AgentSpec(history_window=1))
    env = gym.make(ENV)
    clean = expert_samples(env, TASKS, render)
    noisy = expert_samples(env, TASKS, render, noise=0.5, rng=np.random.default_rng(3))
    assert len(noisy) > len(clean), "mistakes lengthen the episodes: more states to label"
    mistakes = 0
    for prev, cur in itertools.pairwise(noisy):
        shown = policy.decode(cur.prompt_ids)
        executed = parse_action(prev.response_text).command
        if "Action " in shown:  # turn > 0: the last executed command is shown
            mistakes += f"'{executed}']" not in shown
    assert mistakes > 0, "some histories show a random command instead of the previous target"
    with pytest.raises(ValueError, match="noise"):
        expert_samples(env, TASKS, render, noise=1.0)


def test_sft_targets_end_with_the_tokenizers_own_eos() -> None:
    """Chat models list several eos ids (Qwen2.5-Instruct: <|endoftext|> 151643, <|im_end|> 151645); the target must
    end with the one the tokenizer names, not the smallest (it was the smallest once)."""
    from types import SimpleNamespace

    from trainers.core.sft import end_of_turn_id

    qwen_like = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=151645), eos_token_ids=frozenset({151643, 151645}))
    assert end_of_turn_id(qwen_like) == 151645
    other = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=None), eos_token_ids=frozenset({7, 3}))
    assert end_of_turn_id(other) == 3
