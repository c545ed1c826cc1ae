"""The offline ``tiny`` model: a tokenizer trained on env text plus a small random Llama.

Nothing is downloaded. :func:`build_tiny` trains a byte-level BPE tokenizer on a corpus (env feedback,
tasks, commands, prompt scaffolding) with a vocabulary large enough that every corpus word becomes one
token, so it behaves like a word-level tokenizer on env text while staying lossless on anything else
(unseen words fall back to smaller pieces; ``decode(encode(s)) == s``). The agent-format tags and
``KEEP``/``SWITCH`` are single tokens. It then initialises a small ``LlamaConfig`` model from a fixed seed
and saves both (``save_pretrained``, safetensors) so ``Policy.from_pretrained(path)`` and
``AutoModelForCausalLM`` load them like any Hugging Face checkpoint.

:func:`tiny_model` gives the model name ``"tiny"`` a cached build (keyed by a hash of the corpus and the
config); :mod:`trainers.core.models` resolves every other ``--model``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TINY_VERSION = 1
"""Bumped whenever the build changes, so cached builds are not reused across versions."""

FORMAT_TOKENS: tuple[str, ...] = (
    "<think>",
    "</think>",
    "<plan>",
    "</plan>",
    "<action>",
    "</action>",
    "<switch>",
    "</switch>",
    "<subgoal>",
    "</subgoal>",
    "KEEP",
    "SWITCH",
)
BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Each message is ``<|role|>\\ncontent</s>\\n``; the generation prompt is ``<|assistant|>\\n`` so a response
ends with ``</s>`` (the eos token)."""

DEFAULT_CORPUS: tuple[str, ...] = (
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a countertop 1, "
    "a drawer 1, a fridge 1, a garbagecan 1, a microwave 1, a shelf 1, a sinkbasin 1, and a toaster 1.",
    "Your task is to: put a clean mug in coffeemachine.",
    "go to cabinet 1",
    "open drawer 1",
    "close fridge 1",
    "take mug 1 from cabinet 1",
    "move mug 1 to shelf 1",
    "clean mug 1 with sinkbasin 1",
    "heat egg 1 with microwave 1",
    "cool apple 1 with fridge 1",
    "use desklamp 1",
    "examine mug 1",
    "look",
    "inventory",
    "On the cabinet 1, you see a mug 1.",
    "You pick up the mug 1 from the cabinet 1.",
    "Nothing happens.",
)
"""A small ALFWorld-flavoured corpus used when no corpus is given."""


def tiny_corpus_from_texts(texts: Iterable[str], *, include_prompt_text: bool = True) -> list[str]:
    """Deduplicate ``texts`` (order kept) and add the fixed text of every prompt format.

    Pass env-rendered text (feedback, tasks, admissible commands, plan steps); the prompt scaffolding is
    added so instructions tokenize into whole words too.
    """
    out: dict[str, None] = dict.fromkeys(str(t) for t in texts if str(t))
    if include_prompt_text:
        from trainers.core.prompts import scaffold_texts

        out.update(dict.fromkeys(scaffold_texts()))
    return list(out)


def _tiny_config(vocab_size: int, hidden: int, layers: int, heads: int, max_positions: int) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": True,
        "vocab_size": vocab_size,
    }


def _train_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [BOS, EOS, PAD, *ROLE_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    # Format tags are ordinary (non-special) added tokens: they survive decode(skip_special_tokens=True).
    tok.add_tokens([AddedToken(t, single_word=t.isalpha(), normalized=False) for t in FORMAT_TOKENS])
    return tok


def build_tiny(
    out_dir: str | Path,
    corpus: Iterable[str] = DEFAULT_CORPUS,
    *,
    vocab_size: int = 4096,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 4096,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Train a tokenizer on ``corpus``, initialise a small Llama, save both into ``out_dir``.

    Args:
        out_dir: target directory; written atomically (built in a sibling temp dir, then renamed).
        corpus: lines of text the model should tokenize compactly.
        vocab_size: upper bound for the BPE vocabulary (the trained vocabulary may be smaller); the model's
            vocabulary is the tokenizer's size.
        hidden, layers, heads: model width, depth and attention heads (MLP width is ``4 * hidden``).
        max_positions: maximum sequence length (RoPE; no learned positions).
        seed: seed of the weight initialisation (the global torch RNG is left untouched).
        overwrite: replace an existing ``out_dir``; otherwise an existing one raises ``FileExistsError``.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    lines = [str(t) for t in corpus]
    if not lines:
        raise ValueError("corpus is empty")
    raw = _train_tokenizer(lines, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_positions,
        clean_up_tokenization_spaces=False,
    )
    ids = {name: tokenizer.convert_tokens_to_ids(t) for name, t in (("bos", BOS), ("eos", EOS), ("pad", PAD))}
    config = LlamaConfig(
        **_tiny_config(len(tokenizer), hidden, layers, heads, max_positions),
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():  # overwrite=True
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
            shutil.rmtree(old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def tiny_cache_key(corpus: Iterable[str], **config: Any) -> str:
    """A short hash of the corpus, the build config and :data:`TINY_VERSION`."""
    h = hashlib.sha256(json.dumps({"v": TINY_VERSION, **config}, sort_keys=True).encode())
    for line in corpus:
        h.update(str(line).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$PILOT_ENVS_CACHE`` or ``~/.cache/pilot-envs``."""
    return Path(os.environ.get("PILOT_ENVS_CACHE", Path.home() / ".cache" / "pilot-envs"))


def tiny_model(cache_dir: str | Path | None = None, *, corpus: Iterable[str] | None = None, **tiny_kwargs: Any) -> str:
    """The tiny model's directory: built once under ``cache_dir/tiny-<hash>`` (hash of ``corpus`` and
    ``tiny_kwargs``, the keyword arguments of :func:`build_tiny`). Concurrent builders are safe: the first rename
    wins. ``--model tiny`` goes through :func:`trainers.core.models.resolve_model`."""
    lines = list(DEFAULT_CORPUS if corpus is None else corpus)
    target = Path(cache_dir or default_cache_dir()) / f"tiny-{tiny_cache_key(lines, **tiny_kwargs)}"
    if not (target / "config.json").exists():
        try:
            build_tiny(target, lines, **tiny_kwargs)
        except OSError:  # another process won the rename
            if not (target / "config.json").exists():
                raise
    return str(target)
