"""The policy: a Hugging Face causal LM + tokenizer behind the few calls a trainer needs.

This is the only module that imports ``transformers`` (and, lazily, ``peft``). It offers:

- :meth:`Policy.generate`: batched sampling (left padding, one KV-cached loop over all prompts) that returns,
  per response token, the log-probability of that token under the model's **unscaled** distribution
  (``log_softmax(logits)``, temperature 1, no top-p), whatever temperature/top-p was used to sample. This
  is the distribution :meth:`Policy.forward_logprobs` recomputes, so PPO ratios ``exp(logp - logp_old)``
  start at exactly 1 up to float error. (Importance correction for the sampling temperature is not
  attempted; sample at temperature 1 for on-policy training.)
- :meth:`Policy.forward_logprobs`: differentiable per-token log-probs and full-vocabulary entropies of
  given responses after given prompts, optionally micro-batched by token count.
- :meth:`Policy.iter_micro_batches`: the micro-batch plan, so a trainer can run ``forward_logprobs`` and
  ``backward`` per micro-batch without holding every graph at once.

No weights are ever downloaded: ``from_pretrained`` uses ``local_files_only=True``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (applied with ``peft``)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"


@dataclass
class Generation:
    """One sampled response."""

    response_ids: list[int]
    """Sampled tokens, including the final eos token when the response ended with one."""
    logprobs: list[float]
    """Per response token: log-prob under the model's unscaled distribution (temperature 1, no top-p)."""
    text: str
    """``response_ids`` decoded without special tokens."""
    finished: bool
    """True when the response ended by itself (eos or a stop string), False when cut at max_new_tokens."""
    stop_reason: str
    """``"eos"``, ``"stop"`` (a stop string appeared; the tokens up to the one completing it are kept) or
    ``"length"``."""
    entropies: list[float] = field(default_factory=list)
    """Per response token: the entropy (nats) of the model's unscaled next-token distribution it was sampled
    from (the distribution of ``logprobs``)."""

    @property
    def mean_entropy(self) -> float:
        """The response's mean token entropy (0.0 for an empty response)."""
        return sum(self.entropies) / len(self.entropies) if self.entropies else 0.0


class Sampler(Protocol):
    """What rollouts, prompt rendering and SFT need of a policy: a tokenizer, its chat template, and batched
    sampling. :class:`Policy` is one; a method may bring another (PilotRL's planner + frozen executor)."""

    tokenizer: Any
    device: torch.device
    pad_token_id: int
    eos_token_ids: frozenset[int]

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str: ...

    def encode(
        self, texts: Sequence[str], max_tokens: int | None = None, truncation_side: str = "left"
    ) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str: ...

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        stop_strings: Sequence[str] | None = None,
    ) -> Sequence[Generation]: ...


class TokenLogprobs(NamedTuple):
    """Per-response-token results, shape ``[B, T_resp]``; padded positions hold 0 and ``mask`` False."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    mask: torch.Tensor


@dataclass(frozen=True)
class MicroBatch:
    """A slice of a batch: rows ``indices`` of the original lists."""

    indices: list[int]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    num_tokens: int
    """Padded tokens this micro-batch feeds the model (rows x (longest prompt + longest response))."""
    num_response_tokens: int


def iter_micro_batches(
    prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], micro_batch_tokens: int
) -> Iterator[MicroBatch]:
    """Split rows into micro-batches of at most ``micro_batch_tokens`` padded tokens.

    Rows are sorted by length (to waste little padding) and packed greedily; a row longer than the budget
    gets a micro-batch of its own. Pure: no model needed.
    """
    if len(prompt_ids) != len(response_ids):
        raise ValueError("prompt_ids and response_ids must have the same length")
    if micro_batch_tokens <= 0:
        raise ValueError(f"micro_batch_tokens must be positive, got {micro_batch_tokens}")
    order = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]) + len(response_ids[i]), i))
    group: list[int] = []
    p_max = r_max = 0
    for i in order:
        p, r = max(p_max, len(prompt_ids[i])), max(r_max, len(response_ids[i]))
        if group and (len(group) + 1) * (p + r) > micro_batch_tokens:
            yield _micro_batch(group, prompt_ids, response_ids)
            group, p, r = [], len(prompt_ids[i]), len(response_ids[i])
        group.append(i)
        p_max, r_max = p, r
    if group:
        yield _micro_batch(group, prompt_ids, response_ids)


def _micro_batch(
    rows: list[int], prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
) -> MicroBatch:
    prompts = [list(prompt_ids[i]) for i in rows]
    responses = [list(response_ids[i]) for i in rows]
    return MicroBatch(
        indices=rows,
        prompt_ids=prompts,
        response_ids=responses,
        num_tokens=len(rows) * (max(map(len, prompts)) + max(map(len, responses))),
        num_response_tokens=sum(map(len, responses)),
    )


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _disable_dropout(model: nn.Module) -> None:
    """RL needs sampling-time and training-time log-probs to agree, so dropout is switched off."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


class Policy:
    """A causal LM and its tokenizer. Build with :meth:`from_pretrained` or wrap existing objects."""

    def __init__(self, model: Any, tokenizer: Any, *, seed: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device: torch.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        candidates = (tokenizer.pad_token_id, tokenizer.eos_token_id)
        self.pad_token_id: int = next((t for t in candidates if t is not None), 0)
        eos: set[int] = set()
        for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            eos.update([source] if isinstance(source, int) else list(source or ()))
        self.eos_token_ids: frozenset[int] = frozenset(eos)

    # --------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        lora: LoraSpec | None = None,
        seed: int = 0,
        gradient_checkpointing: bool = False,
        attn_implementation: str | None = None,
    ) -> Policy:
        """Load a local (or already cached) Hugging Face causal LM and its tokenizer.

        Args:
            name_or_path: a directory with ``config.json`` or a hub id already in the local HF cache.
            device: defaults to CUDA when available, else CPU.
            dtype: defaults to bfloat16 on CUDA and float32 on CPU.
            lora: wrap the model with LoRA adapters (only the adapters are trainable).
            seed: seeds the policy's sampling generator and the LoRA initialisation.
            gradient_checkpointing: recompute activations in the backward pass (saves memory).
            attn_implementation: passed to transformers (e.g. ``"sdpa"``, ``"eager"``).
        """
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        kwargs: dict[str, Any] = {"local_files_only": True, "dtype": _resolve_dtype(dtype, dev)}
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
        except OSError as err:
            raise FileNotFoundError(
                f"cannot load model {str(name_or_path)!r}: it must be a local path or already in the Hugging "
                "Face cache (nothing is downloaded at run time; use 'tiny' for the offline model, or "
                f"download it beforehand with `huggingface-cli download {name_or_path}`)"
            ) from err
        model.to(dev)
        if lora is not None:
            model = _apply_lora(model, lora, seed)
        _disable_dropout(model)
        if gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            if lora is not None:
                model.enable_input_require_grads()
            model.train()  # HF checkpoints only in train mode; dropout is off, so this changes nothing else
        else:
            model.eval()
        return cls(model, tokenizer, seed=seed)

    # ----------------------------------------------------------------------------------------- text
    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """Render chat messages to the prompt string; ``role: content`` lines when there is no template."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
            )
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return text + ("assistant: " if add_generation_prompt else "")

    def has_system_role(self) -> bool:
        """Whether the tokenizer's own chat template renders a system message (the offline tiny model's template
        does, but counts as none: its measured results put instructions in the user message)."""
        from trainers.core.tiny import CHAT_TEMPLATE

        template = getattr(self.tokenizer, "chat_template", None)
        if not template or template == CHAT_TEMPLATE:
            return False
        probe = "SYSTEM-PROBE-4711"
        try:
            text = self.apply_chat_template([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}])
        except Exception:
            return False
        return probe in text

    def encode(
        self, texts: Sequence[str], max_tokens: int | None = None, truncation_side: str = "left"
    ) -> list[list[int]]:
        """Token ids of already-templated texts (no special tokens added), cut to ``max_tokens``.

        ``truncation_side="left"`` keeps the end of the text (the latest observation and the instruction).
        """
        if truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {truncation_side!r}")
        # verbose=False: no "longer than the maximum sequence length" warning, the cut below is ours to make
        ids = [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]
        if max_tokens is None:
            return ids
        if truncation_side == "left":
            return [x[len(x) - max_tokens :] if len(x) > max_tokens else x for x in ids]
        return [x[:max_tokens] for x in ids]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """Text of token ids."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # ---------------------------------------------------------------------------------------- model
    def parameters(self, trainable_only: bool = True) -> list[nn.Parameter]:
        """The parameters to optimise (with LoRA: the adapters only)."""
        return [p for p in self.model.parameters() if p.requires_grad or not trainable_only]

    def train(self, mode: bool = True) -> Policy:
        """Set the model's train/eval mode (dropout is disabled either way)."""
        self.model.train(mode)
        return self

    def save(self, path: str | Path) -> Path:
        """``save_pretrained`` the model (safetensors; with LoRA: the adapters) and the tokenizer."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        return out

    def _batch(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded prompts followed by right-padded responses: ids, attention mask, position ids."""
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        responses = response_ids if response_ids is not None else [[] for _ in prompt_ids]
        p_max = max(len(p) for p in prompt_ids)
        r_max = max((len(r) for r in responses), default=0)
        ids = torch.full((len(prompt_ids), p_max + r_max), self.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, (p, r) in enumerate(zip(prompt_ids, responses, strict=True)):
            ids[i, p_max - len(p) : p_max + len(r)] = torch.tensor([*p, *r], dtype=torch.long)
            attn[i, p_max - len(p) : p_max + len(r)] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), attn.to(self.device), pos.to(self.device)

    # ------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        stop_strings: Sequence[str] | None = None,
    ) -> list[Generation]:
        """Sample one response per prompt, all prompts in one batched, KV-cached loop.

        Args:
            prompt_ids: token ids per prompt (e.g. from :meth:`encode`).
            max_new_tokens: response length limit.
            temperature: sampling temperature; ``<= 0`` means greedy.
            top_p: nucleus sampling mass (applied after temperature).
            generator: torch generator to sample with; ``seed`` makes a fresh one; default: the policy's.
            stop_strings: a response also ends once its text contains one of these.

        The returned ``logprobs`` are of the unscaled distribution (see the module docstring).
        """
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        gen = generator or self.generator
        batch = len(prompt_ids)
        if batch == 0:
            return []
        was_training = self.model.training
        self.model.eval()
        try:
            tokens, logps, ents, reasons = self._sample_loop(
                prompt_ids, max_new_tokens, temperature, top_p, gen, list(stop_strings or ())
            )
        finally:
            self.model.train(was_training)
        return [
            Generation(
                response_ids=t, logprobs=lp, text=self.decode(t), finished=r != "length", stop_reason=r, entropies=h
            )
            for t, lp, h, r in zip(tokens, logps, ents, reasons, strict=True)
        ]

    def _sample_loop(
        self,
        prompt_ids: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        gen: torch.Generator,
        stops: list[str],
    ) -> tuple[list[list[int]], list[list[float]], list[list[float]], list[str]]:
        batch = len(prompt_ids)
        ids, attn, pos = self._batch(prompt_ids)
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logps: list[list[float]] = [[] for _ in range(batch)]
        ents: list[list[float]] = [[] for _ in range(batch)]
        reasons = ["length"] * batch
        active = torch.ones(batch, dtype=torch.bool)
        eos = torch.tensor(sorted(self.eos_token_ids), dtype=torch.long)
        window = max((len(s) for s in stops), default=0) + 2
        out = self.model(
            input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1
        )
        cache, next_pos = out.cache, pos[:, -1:] + 1  # transformers' cache API (``past_key_values`` is deprecated)
        for _ in range(max_new_tokens):
            logits = out.logits[:, -1, :].float()
            token = _sample(logits, temperature, top_p, gen)
            log_dist = torch.log_softmax(logits, dim=-1)
            logp = log_dist.gather(-1, token[:, None])[:, 0]
            ent = -(log_dist.exp() * log_dist).nansum(-1)  # 0 * -inf (masked tokens) counts as 0
            token_cpu, logp_cpu, ent_cpu = token.cpu(), logp.cpu(), ent.cpu()
            is_eos = torch.isin(token_cpu, eos)
            for i in active.nonzero()[:, 0].tolist():
                tokens[i].append(int(token_cpu[i]))
                logps[i].append(float(logp_cpu[i]))
                ents[i].append(float(ent_cpu[i]))
                if is_eos[i]:
                    reasons[i], active[i] = "eos", False
                elif stops and any(
                    s in self.decode(tokens[i][-window:], skip_special_tokens=False) for s in stops
                ):
                    reasons[i], active[i] = "stop", False
            if not active.any():
                break
            token = token.masked_fill(~active.to(token.device), self.pad_token_id)
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
            out = self.model(
                input_ids=token[:, None],
                attention_mask=attn,
                position_ids=next_pos,
                cache=cache,
                use_cache=True,
            )
            cache, next_pos = out.cache, next_pos + 1
        return tokens, logps, ents, reasons

    # ------------------------------------------------------------------------------------- training
    def iter_micro_batches(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        micro_batch_tokens: int,
    ) -> Iterator[MicroBatch]:
        """Plan micro-batches (see :func:`iter_micro_batches`).

        Typical use, one backward per micro-batch (no graph outlives its micro-batch)::

            for mb in policy.iter_micro_batches(prompts, responses, 8192):
                out = policy.forward_logprobs(mb.prompt_ids, mb.response_ids, with_entropy=True)
                loss = my_loss(out, advantages[mb.indices]) * mb.num_response_tokens / total_tokens
                loss.backward()
        """
        return iter_micro_batches(prompt_ids, response_ids, micro_batch_tokens)

    def forward_logprobs(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        *,
        with_entropy: bool = False,
        micro_batch_tokens: int | None = None,
        module: nn.Module | None = None,
    ) -> TokenLogprobs:
        """Log-probs (and entropies) of each response token given its prompt, with gradients.

        Returns ``TokenLogprobs(logprobs, entropy, mask)``, each ``[B, T_resp]`` with ``T_resp`` the
        longest response, rows in input order. ``entropy`` is the full-vocabulary entropy of the
        next-token distribution at each response position (None unless ``with_entropy``).
        ``micro_batch_tokens`` runs the model in micro-batches (same values) but keeps every graph
        alive until the result is freed; to backward per micro-batch use :meth:`iter_micro_batches`.
        ``module`` runs a wrapper of :attr:`model` instead (e.g. the DDP module from
        ``accelerator.prepare``, so backward passes synchronise gradients); sampling always uses the bare
        :attr:`model`.
        """
        if micro_batch_tokens is None:
            return self._forward(prompt_ids, response_ids, with_entropy, module)
        r_max = max((len(r) for r in response_ids), default=0)
        parts: list[TokenLogprobs] = []
        order: list[int] = []
        for mb in iter_micro_batches(prompt_ids, response_ids, micro_batch_tokens):
            res = self._forward(mb.prompt_ids, mb.response_ids, with_entropy, module)
            parts.append(TokenLogprobs(*(None if t is None else _pad_cols(t, r_max) for t in res)))
            order.extend(mb.indices)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        inverse = inverse.to(self.device)
        return TokenLogprobs(
            torch.cat([p.logprobs for p in parts])[inverse],
            torch.cat([p.entropy for p in parts])[inverse] if with_entropy else None,  # type: ignore[misc]
            torch.cat([p.mask for p in parts])[inverse],
        )

    def _forward(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        with_entropy: bool,
        module: nn.Module | None = None,
    ) -> TokenLogprobs:
        if len(prompt_ids) != len(response_ids):
            raise ValueError("prompt_ids and response_ids must have the same length")
        r_max = max((len(r) for r in response_ids), default=0)
        batch = len(prompt_ids)
        mask = torch.zeros(batch, r_max, dtype=torch.bool, device=self.device)
        for i, r in enumerate(response_ids):
            mask[i, : len(r)] = True
        if r_max == 0:
            empty = torch.zeros(batch, 0, device=self.device)
            return TokenLogprobs(empty, empty if with_entropy else None, mask)
        ids, attn, pos = self._batch(prompt_ids, response_ids)
        out = (module or self.model)(
            input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=r_max + 1
        )
        logits = out.logits[:, :-1].float()  # position t predicts response token t
        targets = ids[:, -r_max:]
        lse = torch.logsumexp(logits, dim=-1)
        logprobs = (logits.gather(-1, targets[..., None])[..., 0] - lse).masked_fill(~mask, 0.0)
        entropy = None
        if with_entropy:
            entropy = (lse - (torch.softmax(logits, dim=-1) * logits).sum(-1)).masked_fill(~mask, 0.0)
        return TokenLogprobs(logprobs, entropy, mask)


def _pad_cols(t: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, width - t.shape[1]))


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """Next tokens from ``[B, V]`` logits: greedy when ``temperature <= 0``, else temperature + top-p."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p  # keeps the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    src = probs if probs.device == gen.device else probs.to(gen.device)
    return torch.multinomial(src, 1, generator=gen)[:, 0].to(logits.device)


def _apply_lora(model: Any, spec: LoraSpec, seed: int) -> Any:
    from peft import LoraConfig, get_peft_model  # lazy: peft is optional

    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        task_type="CAUSAL_LM",
        target_modules=spec.target_modules
        if isinstance(spec.target_modules, str)
        else list(spec.target_modules),
    )
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
        # peft reads the model's deprecated ``is_gradient_checkpointing`` (transformers 5.23+): its warning, not ours
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        torch.manual_seed(seed)
        return get_peft_model(model, config)
