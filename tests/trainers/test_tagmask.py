"""Tag spans -> token masks, for the tiny word-level tokenizer and a byte-level BPE where tags are split."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from trainers.core.tagmask import tag_char_spans, tag_token_masks, tag_token_masks_batch, token_char_spans
from trainers.core.tiny import DEFAULT_CORPUS, build_tiny, tiny_corpus_from_texts

RESPONSE = "<plan>Step 1: go to shelf 1</plan><think>find the mug</think><action>take mug 1 from shelf 1</action>"


@pytest.fixture(scope="module")
def tiny_tok(tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny(tmp_path_factory.mktemp("tiny") / "m", tiny_corpus_from_texts(DEFAULT_CORPUS),
                      hidden=16, layers=1, heads=2)
    return PreTrainedTokenizerFast.from_pretrained(str(path))


@pytest.fixture(scope="module")
def bpe_tok():
    """A byte-level BPE with a small vocabulary: tags split into several tokens, unicode spans bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["</s>"], show_progress=False)
    tok.train_from_iterator(["go to shelf 1", "take mug 1", "find the mug"] * 10, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")


def _texts(tok, ids, mask) -> str:
    return "".join(tok.decode([i]) for i, m in zip(ids, mask.tolist(), strict=True) if m)


def test_char_spans_cover_text_and_handle_unclosed_tags() -> None:
    text = "xx<action>go</action>yy<ACTION>again"
    assert tag_char_spans(text, "action") == [(2, 21), (23, len(text))]
    assert tag_char_spans(text, "action", include_tags=False) == [(10, 12), (31, len(text))]
    assert tag_char_spans(text, "plan") == []


@pytest.mark.parametrize("which", ["tiny", "bpe"])
def test_masks_select_exactly_the_tag_spans(which: str, tiny_tok, bpe_tok) -> None:
    tok = tiny_tok if which == "tiny" else bpe_tok
    ids = [*tok.encode(RESPONSE, add_special_tokens=False), tok.eos_token_id]
    text, spans = token_char_spans(tok, ids)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "spans must be contiguous"
    masks = tag_token_masks(tok, ids)
    assert _texts(tok, ids, masks["action"]) == "<action>take mug 1 from shelf 1</action>"
    assert _texts(tok, ids, masks["plan"]) == "<plan>Step 1: go to shelf 1</plan>"
    assert _texts(tok, ids, masks["think"]) == "<think>find the mug</think>"
    assert not masks["switch"].any() and not masks["subgoal"].any()
    assert not masks["action"][-1], "eos belongs to no tag"
    inner = tag_token_masks(tok, ids, ("action",), include_tags=False)["action"]
    assert _texts(tok, ids, inner) == "take mug 1 from shelf 1"
    if which == "bpe":
        assert len(tok.encode("<action>", add_special_tokens=False)) > 1, "the test needs split tags"


def test_slow_path_for_non_canonical_tokenizations_and_multibyte(bpe_tok) -> None:
    tok = bpe_tok
    # spell every character as its own token: a sampled (non-canonical) tokenization, so re-encoding differs
    text = "<think>é ☃</think><action>go</action>"
    ids = [i for ch in text for i in tok.encode(ch, add_special_tokens=False)]
    assert ids != tok.encode(text, add_special_tokens=False)
    decoded, spans = token_char_spans(tok, ids)
    assert decoded == text and spans[-1][1] == len(text)
    multibyte = [k for k, (s, e) in enumerate(spans) if s == e]
    assert multibyte, "partial UTF-8 bytes get empty spans"
    masks = tag_token_masks(tok, ids, ("think", "action"))
    assert _texts(tok, ids, masks["action"]) == "<action>go</action>"
    think_ids = [i for i, m in zip(ids, masks["think"].tolist(), strict=True) if m]
    assert tok.decode(think_ids) == "<think>é ☃</think>"


def test_batch_masks_are_padded(tiny_tok) -> None:
    a = tiny_tok.encode("<action>look</action>", add_special_tokens=False)
    b = tiny_tok.encode("<think>x</think><action>go to shelf 1</action>", add_special_tokens=False)
    out = tag_token_masks_batch(tiny_tok, [a, b], ("action",), width=len(b) + 2)
    assert out["action"].shape == (2, len(b) + 2) and out["action"].dtype == torch.bool
    assert out["action"][0, : len(a)].all() and not out["action"][0, len(a) :].any()
    assert out["action"][1].sum() == len(tiny_tok.encode("<action>go to shelf 1</action>", add_special_tokens=False))
