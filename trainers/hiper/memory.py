"""What HiPER's critic costs in memory: a separate critic network (the choice made here) against three value
heads on the policy's own trunk.

:func:`critic_costs` counts parameters and the bytes of the tensors training keeps alive for them (fp32
weights, fp32 gradients, AdamW's two fp32 moments = 16 bytes per trainable parameter) for both options,
from a model built on the ``meta`` device (no weights allocated, nothing downloaded), so it works for
any size: the tiny model or a Qwen2.5-0.5B-sized config (:func:`qwen25_05b_config`, the public
architecture numbers). :func:`measured_tensor_bytes` sums the bytes of the tensors a live trainer holds
(weights, gradients, optimizer states), to check the analytic numbers on the tiny model.

``python -m trainers.hiper.memory`` prints the table for the tiny model and for Qwen2.5-0.5B.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["CriticCost", "critic_costs", "measured_tensor_bytes", "qwen25_05b_config", "tiny_config"]

TRAIN_BYTES_PER_PARAM = 16
"""fp32 weight + fp32 gradient + AdamW exp_avg + exp_avg_sq."""


@dataclass(frozen=True)
class CriticCost:
    """Parameters and training-state bytes of the actor, the frozen KL reference and the critic."""

    policy_params: int
    trunk_params: int
    """Parameters of the policy without its LM head (what a separate critic copies)."""
    separate_critic_params: int
    shared_head_params: int
    separate_critic_bytes: int
    """Extra training-state bytes of a separate critic: 16 bytes per parameter (weights, grads, AdamW)."""
    shared_head_bytes: int
    actor_bytes: int
    """Training state of the actor itself (16 bytes per parameter)."""
    reference_bytes: int
    """The frozen fp32 KL reference (4 bytes per parameter)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def qwen25_05b_config() -> Any:
    """A ``Qwen2Config`` with Qwen2.5-0.5B's published architecture (hidden 896, 24 layers, 14/2 heads,
    MLP 4864, vocab 151936, tied embeddings)."""
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                       tie_word_embeddings=True)


def tiny_config(vocab_size: int = 4096, hidden: int = 128, layers: int = 2, heads: int = 4) -> Any:
    """The tiny model's ``LlamaConfig`` shape (see :mod:`trainers.core.tiny`)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=4096, tie_word_embeddings=False)


def _unique_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields tied weights once


def critic_costs(config: Any, num_heads: int = 3) -> CriticCost:
    """Costs of both critic designs for a causal LM ``config`` (built on the meta device)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = _unique_params(model)
    trunk = _unique_params(getattr(model, model.base_model_prefix))
    heads = (config.hidden_size + 1) * num_heads
    critic = trunk + heads
    return CriticCost(
        policy_params=total,
        trunk_params=trunk,
        separate_critic_params=critic,
        shared_head_params=heads,
        separate_critic_bytes=critic * TRAIN_BYTES_PER_PARAM,
        shared_head_bytes=heads * TRAIN_BYTES_PER_PARAM,
        actor_bytes=total * TRAIN_BYTES_PER_PARAM,
        reference_bytes=total * 4,
    )


def measured_tensor_bytes(module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes held by ``module``'s parameters, their gradients and ``optimizer``'s state tensors."""
    params = list(module.parameters())
    ids = {id(p) for p in params}
    out = {
        "weights": sum(p.numel() * p.element_size() for p in params),
        "grads": sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None),
        "optimizer": 0,
    }
    if optimizer is not None:
        for p, state in optimizer.state.items():
            if id(p) in ids:
                out["optimizer"] += sum(t.numel() * t.element_size() for t in state.values()
                                        if torch.is_tensor(t) and t.dim() > 0)
    return out


def _fmt(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def table(costs: dict[str, CriticCost]) -> str:
    """A Markdown table of :func:`critic_costs` results, one column per model."""
    names = list(costs)
    rows = [
        ("policy parameters", lambda c: f"{c.policy_params:,}"),
        ("separate critic: parameters (trunk copy + 3 heads)", lambda c: f"{c.separate_critic_params:,}"),
        ("separate critic: + training state (fp32 w, g, AdamW)", lambda c: _fmt(c.separate_critic_bytes)),
        ("shared trunk: parameters (3 heads)", lambda c: f"{c.shared_head_params:,}"),
        ("shared trunk: + training state", lambda c: _fmt(c.shared_head_bytes)),
        ("actor training state, for scale", lambda c: _fmt(c.actor_bytes)),
        ("frozen KL reference (fp32)", lambda c: _fmt(c.reference_bytes)),
    ]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(f(costs[n]) for n in names) + " |" for label, f in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table({"tiny (128 x 2)": critic_costs(tiny_config()), "Qwen2.5-0.5B": critic_costs(qwen25_05b_config())}))
