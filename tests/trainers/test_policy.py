"""Policy: sampling logprobs == recomputed logprobs, masks, truncation, micro-batching, LoRA, saving."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from trainers.core.policy import Generation, LoraSpec, Policy, iter_micro_batches
from trainers.core.prompts import render_messages
from trainers.core.tiny import DEFAULT_CORPUS, build_tiny, tiny_corpus_from_texts

TOL = 1e-4

# transformers deprecations are errors here: the trainers must use the current API before a release removes the old
pytestmark = [pytest.mark.filterwarnings("error::FutureWarning"), pytest.mark.filterwarnings("error::DeprecationWarning")]


def test_sampling_uses_the_current_cache_api(policy: Policy, prompts: list[list[int]],
                                             caplog: pytest.LogCaptureFixture) -> None:
    """No FutureWarning (the filter above) and no deprecation line from transformers' logger either."""
    import logging

    with caplog.at_level(logging.WARNING, logger="transformers"):
        policy.generate(prompts[:2], max_new_tokens=4, seed=0)
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "m", tiny_corpus_from_texts(DEFAULT_CORPUS), seed=0)


@pytest.fixture(scope="module")
def policy(tiny_path: Path) -> Policy:
    return Policy.from_pretrained(tiny_path, seed=0)


@pytest.fixture(scope="module")
def prompts(policy: Policy) -> list[list[int]]:
    """Eight chat prompts of different lengths (so left padding matters)."""
    texts = []
    for i in range(8):
        obs = {
            "text": "You see a mug 1. " * (i + 1),
            "task": "put a mug in fridge.",
            "admissible_commands": DEFAULT_CORPUS[2 : 3 + i],
        }
        texts.append(policy.apply_chat_template(render_messages("think_action", obs)))
    return [policy.encode([t], max_tokens=30 + 10 * i)[0] for i, t in enumerate(texts)]


def _stack(gens: list[Generation]) -> torch.Tensor:
    width = max(len(g.logprobs) for g in gens)
    return torch.tensor([g.logprobs + [0.0] * (width - len(g.logprobs)) for g in gens])


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8), (0.0, 1.0)])
def test_generate_logprobs_match_forward(
    policy: Policy, prompts: list[list[int]], temperature: float, top_p: float
) -> None:
    gens = policy.generate(prompts, max_new_tokens=24, temperature=temperature, top_p=top_p, seed=5)
    assert len(gens) == len(prompts)
    assert len({len(p) for p in prompts}) > 1, "prompts should need padding"
    out = policy.forward_logprobs(prompts, [g.response_ids for g in gens], with_entropy=True)
    assert (
        out.logprobs.shape
        == out.mask.shape
        == out.entropy.shape
        == (8, max(len(g.response_ids) for g in gens))
    )
    assert torch.allclose(out.logprobs.detach(), _stack(gens), atol=TOL)
    assert torch.equal(
        out.mask, torch.tensor([[t < len(g.response_ids) for t in range(out.mask.shape[1])] for g in gens])
    )
    assert (out.logprobs.detach()[~out.mask] == 0).all() and (out.entropy.detach()[~out.mask] == 0).all()
    assert (out.logprobs.detach()[out.mask] < 0).all()
    vocab = len(policy.tokenizer)
    ent = out.entropy.detach()[out.mask]
    assert (ent > 0).all() and (ent <= torch.log(torch.tensor(float(vocab))) + TOL).all()
    for g in gens:
        assert g.text == policy.decode(g.response_ids)
        assert g.finished == (g.stop_reason != "length")
        assert len(g.response_ids) == 24 or g.stop_reason == "eos"


def test_entropy_is_full_vocabulary(policy: Policy, prompts: list[list[int]]) -> None:
    resp = [[5, 6, 7]]
    out = policy.forward_logprobs(prompts[:1], resp, with_entropy=True)
    with torch.no_grad():
        ids = torch.tensor([prompts[0] + resp[0]])
        logits = policy.model(input_ids=ids).logits[0, len(prompts[0]) - 1 : -1].float()
    p = torch.softmax(logits, -1)
    assert torch.allclose(out.entropy[0].detach(), -(p * p.log()).sum(-1), atol=TOL)
    assert torch.allclose(out.logprobs[0].detach(), p.log()[torch.arange(3), torch.tensor(resp[0])], atol=TOL)
    assert policy.forward_logprobs(prompts[:1], resp).entropy is None


def test_generation_is_seeded(policy: Policy, prompts: list[list[int]]) -> None:
    a = policy.generate(prompts, max_new_tokens=12, seed=1)
    b = policy.generate(prompts, max_new_tokens=12, seed=1)
    c = policy.generate(prompts, max_new_tokens=12, seed=2)
    assert [g.response_ids for g in a] == [g.response_ids for g in b] != [g.response_ids for g in c]
    g1 = torch.Generator().manual_seed(7)
    g2 = torch.Generator().manual_seed(7)
    assert [x.response_ids for x in policy.generate(prompts, max_new_tokens=6, generator=g1)] == [
        x.response_ids for x in policy.generate(prompts, max_new_tokens=6, generator=g2)
    ]


def test_greedy_is_batch_invariant_and_top_p_tiny_is_greedy(policy: Policy, prompts: list[list[int]]) -> None:
    batch = policy.generate(prompts, max_new_tokens=10, temperature=0)
    alone = [policy.generate([p], max_new_tokens=10, temperature=0)[0] for p in prompts[:3]]
    assert [g.response_ids for g in alone] == [g.response_ids for g in batch[:3]]
    nucleus = policy.generate(prompts, max_new_tokens=10, temperature=1.0, top_p=1e-6, seed=3)
    assert [g.response_ids for g in nucleus] == [g.response_ids for g in batch]


def test_stop_reasons(policy: Policy, prompts: list[list[int]]) -> None:
    ref = policy.generate(prompts[:1], max_new_tokens=8, temperature=0)[0]
    assert (ref.stop_reason, ref.finished, len(ref.response_ids)) == ("length", False, 8)
    # a stop string completed by the 3rd token stops right there
    stop = policy.decode(ref.response_ids[:3], skip_special_tokens=False)
    got = policy.generate(prompts[:1], max_new_tokens=8, temperature=0, stop_strings=[stop])[0]
    assert (got.stop_reason, got.finished, got.response_ids) == ("stop", True, ref.response_ids[:3])
    assert got.logprobs == pytest.approx(ref.logprobs[:3], abs=1e-6)
    # eos: pretend the first greedy token is an eos token; it is kept (and trained) as part of the response
    eos_policy = Policy(policy.model, policy.tokenizer)
    eos_policy.eos_token_ids = frozenset({ref.response_ids[0]})
    got = eos_policy.generate(prompts[:1], max_new_tokens=8, temperature=0)[0]
    assert (got.stop_reason, got.finished, got.response_ids) == ("eos", True, ref.response_ids[:1])
    assert policy.generate([], max_new_tokens=4) == []


def test_rows_are_independent_of_padding(policy: Policy, prompts: list[list[int]]) -> None:
    responses = [[(7 * i + t) % 50 + 10 for t in range(i + 1)] for i in range(len(prompts))]
    batched = policy.forward_logprobs(prompts, responses)
    for i in (0, 3, 7):
        alone = policy.forward_logprobs([prompts[i]], [responses[i]])
        width = len(responses[i])
        assert torch.allclose(alone.logprobs[0].detach(), batched.logprobs[i, :width].detach(), atol=TOL)


def test_empty_responses(policy: Policy, prompts: list[list[int]]) -> None:
    out = policy.forward_logprobs(prompts[:2], [[], []], with_entropy=True)
    assert out.logprobs.shape == (2, 0) and out.entropy.shape == (2, 0)
    out = policy.forward_logprobs(prompts[:2], [[], [4, 5]])
    assert out.mask.tolist() == [[False, False], [True, True]] and out.logprobs[0].abs().sum() == 0
    with pytest.raises(ValueError, match="at least one token"):
        policy.forward_logprobs([[]], [[1]])


def test_encode_truncates_left_by_default(policy: Policy) -> None:
    text = "go to cabinet 1 take mug 1 from cabinet 1 move mug 1 to shelf 1"
    full = policy.encode([text])[0]
    assert len(full) > 6
    assert policy.encode([text], max_tokens=6)[0] == full[-6:]
    assert policy.encode([text], max_tokens=6, truncation_side="right")[0] == full[:6]
    assert policy.encode([text], max_tokens=1000)[0] == full
    assert policy.decode(full) == text
    with pytest.raises(ValueError, match="truncation_side"):
        policy.encode([text], max_tokens=3, truncation_side="middle")


def test_micro_batch_plan() -> None:
    prompts = [[1] * n for n in (5, 30, 2, 9, 17, 3)]
    responses = [[2] * n for n in (4, 1, 8, 0, 6, 2)]
    plan = list(iter_micro_batches(prompts, responses, micro_batch_tokens=40))
    assert sorted(i for mb in plan for i in mb.indices) == list(range(6))
    for mb in plan:
        assert mb.num_tokens <= 40 or len(mb.indices) == 1
        assert mb.prompt_ids == [prompts[i] for i in mb.indices]
        assert mb.num_response_tokens == sum(len(responses[i]) for i in mb.indices)
    assert [len(mb.indices) for mb in iter_micro_batches(prompts, responses, 10**6)] == [6]
    assert [len(mb.indices) for mb in iter_micro_batches(prompts, responses, 5)] == [1] * 6
    with pytest.raises(ValueError, match="positive"):
        list(iter_micro_batches(prompts, responses, 0))


def test_micro_batching_matches_one_batch(policy: Policy, prompts: list[list[int]]) -> None:
    responses = [[(3 * i + t) % 40 + 20 for t in range(2 + (i * 5) % 9)] for i in range(len(prompts))]
    full = policy.forward_logprobs(prompts, responses, with_entropy=True)
    split = policy.forward_logprobs(prompts, responses, with_entropy=True, micro_batch_tokens=200)
    assert len(list(policy.iter_micro_batches(prompts, responses, 200))) > 2
    assert torch.equal(full.mask, split.mask)
    assert torch.allclose(full.logprobs, split.logprobs, atol=TOL)
    assert torch.allclose(full.entropy, split.entropy, atol=TOL)
    # gradients: backward per micro-batch accumulates to the full-batch gradient
    params = policy.parameters()
    policy.model.zero_grad()
    (full.logprobs.sum() + full.entropy.sum()).backward()
    expected = [p.grad.clone() for p in params]
    policy.model.zero_grad()
    for mb in policy.iter_micro_batches(prompts, responses, 200):
        out = policy.forward_logprobs(mb.prompt_ids, mb.response_ids, with_entropy=True)
        (out.logprobs.sum() + out.entropy.sum()).backward()
    for p, g in zip(params, expected, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-4, rtol=1e-3)
    policy.model.zero_grad()


def test_chat_template_and_fallback(policy: Policy) -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert policy.apply_chat_template(msgs) == "<s><|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\n"
    tok = copy.deepcopy(policy.tokenizer)
    tok.chat_template = None
    plain = Policy(policy.model, tok)
    assert plain.apply_chat_template(msgs) == "system: S\nuser: U\nassistant: "
    assert plain.apply_chat_template(msgs, add_generation_prompt=False) == "system: S\nuser: U\n"


def test_loading_defaults_and_errors(policy: Policy, tmp_path: Path) -> None:
    assert policy.device.type == "cpu" and next(policy.model.parameters()).dtype == torch.float32
    assert policy.eos_token_ids == {policy.tokenizer.eos_token_id}
    assert len(policy.parameters()) == len(list(policy.model.parameters()))
    with pytest.raises(FileNotFoundError, match="local path or already in the Hugging Face cache"):
        Policy.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="local path"):
        Policy.from_pretrained("nobody-here/no-such-model-xyz")


def test_save_and_reload(policy: Policy, prompts: list[list[int]], tmp_path: Path) -> None:
    saved = policy.save(tmp_path / "ckpt")
    assert (saved / "model.safetensors").exists() and (saved / "tokenizer.json").exists()
    again = Policy.from_pretrained(saved)
    resp = [[11, 12, 13]] * 2
    assert torch.allclose(
        again.forward_logprobs(prompts[:2], resp).logprobs,
        policy.forward_logprobs(prompts[:2], resp).logprobs,
        atol=1e-6,
    )


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")
def test_lora(tiny_path: Path, prompts: list[list[int]], policy: Policy, tmp_path: Path) -> None:
    lora = Policy.from_pretrained(tiny_path, lora=LoraSpec(r=4, alpha=8), seed=0)
    trainable = lora.parameters()
    assert trainable and all("lora_" in n for n, p in lora.model.named_parameters() if p.requires_grad)
    assert sum(p.numel() for p in trainable) < sum(p.numel() for p in lora.parameters(trainable_only=False))
    gens = lora.generate(prompts[:4], max_new_tokens=8, seed=0)
    out = lora.forward_logprobs(prompts[:4], [g.response_ids for g in gens])
    assert torch.allclose(out.logprobs.detach(), _stack(gens), atol=TOL)
    base = policy.forward_logprobs(prompts[:4], [g.response_ids for g in gens])  # B starts at zero
    assert torch.allclose(out.logprobs.detach(), base.logprobs.detach(), atol=TOL)
    out.logprobs.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    assert (lora.save(tmp_path / "adapter") / "adapter_config.json").exists()
