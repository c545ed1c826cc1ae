"""The offline tiny model: tokenizer properties, saved checkpoint, caching by corpus hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.core.models import resolve_model
from trainers.core.prompts import render_expert_response, render_messages
from trainers.core.registry import FORMATS
from trainers.core.tiny import (
    DEFAULT_CORPUS,
    FORMAT_TOKENS,
    build_tiny,
    tiny_cache_key,
    tiny_corpus_from_texts,
)

CORPUS = tiny_corpus_from_texts([*DEFAULT_CORPUS, "take apple 2 from countertop 3", "go to shelf 4"])
SMALL = {"hidden": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", CORPUS, seed=3)


def test_saved_checkpoint_loads_offline(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [p for p in tiny_dir.parent.iterdir() if p.name.startswith(".")], "temp dir left behind"
    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    assert model.config.hidden_size == 128 and model.config.num_hidden_layers == 2
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.eos_token_id == tok.eos_token_id == model.generation_config.eos_token_id
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_format_tags_are_single_tokens(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    for tag in FORMAT_TOKENS:
        ids = tok.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert tok.decode(ids, skip_special_tokens=True) == tag  # not special: survives decoding
    for name in FORMATS:
        text = render_expert_response(name, action="go to shelf 4", plan=["go to shelf 4"], subgoal="s")
        assert tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True) == text


def test_corpus_words_are_whole_tokens_and_text_is_lossless(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    for command in ("take apple 2 from countertop 3", "go to cabinet 1", "clean mug 1 with sinkbasin 1"):
        assert len(tok.encode(command, add_special_tokens=False)) == len(command.split())
    for text in ("Zyzzyva ünïcode \t tabs\n\nand   spaces!", "<action>go to shelf 4</action>"):
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_chat_template(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    msgs = render_messages("think_action", {"text": "You see a mug 1.", "task": "find a mug"})
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<s><|user|>\nYou are an expert") and prompt.endswith("</s>\n<|assistant|>\n")
    for role in ("<|user|>", "<|assistant|>"):
        assert len(tok.encode(role, add_special_tokens=False)) == 1


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path) -> None:
    a = build_tiny(tmp_path / "a", CORPUS, seed=1, **SMALL)
    b = build_tiny(tmp_path / "b", CORPUS, seed=1, **SMALL)
    c = build_tiny(tmp_path / "c", CORPUS, seed=2, **SMALL)
    wa, wb, wc = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_build_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny(tmp_path / "m", CORPUS, **SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_overwrite_and_exists(tmp_path: Path) -> None:
    path = build_tiny(tmp_path / "m", CORPUS, **SMALL)
    with pytest.raises(FileExistsError):
        build_tiny(path, CORPUS, **SMALL)
    build_tiny(path, CORPUS, overwrite=True, hidden=64, layers=1, heads=2)
    assert AutoModelForCausalLM.from_pretrained(path).config.hidden_size == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    with pytest.raises(ValueError, match="empty"):
        build_tiny(tmp_path / "e", [])


def test_resolve_model_caches_by_corpus_and_config(tmp_path: Path) -> None:
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct", tmp_path) == "Qwen/Qwen2.5-1.5B-Instruct"
    local = str(tmp_path / "my-model")  # a path is passed on as it is
    assert resolve_model(local, tmp_path) == local
    first = resolve_model("tiny", tmp_path, corpus=CORPUS, **SMALL)
    stamp = (Path(first) / "model.safetensors").stat().st_mtime_ns
    again = resolve_model("tiny", tmp_path, corpus=CORPUS, **SMALL)
    assert again == first and (Path(first) / "model.safetensors").stat().st_mtime_ns == stamp
    other = resolve_model("tiny", tmp_path, corpus=[*CORPUS, "a brand new line"], **SMALL)
    assert other != first and Path(other).name.startswith("tiny-")
    assert tiny_cache_key(CORPUS, **SMALL) != tiny_cache_key(CORPUS, **{**SMALL, "seed": 9})


def test_corpus_helper_dedupes_and_adds_scaffold() -> None:
    lines = tiny_corpus_from_texts(["look", "look", "", "go to shelf 1"])
    assert lines[:2] == ["look", "go to shelf 1"]
    assert any("<think>" in line for line in lines)
    assert tiny_corpus_from_texts(["look"], include_prompt_text=False) == ["look"]
