"""A separate critic: a copy of the policy's transformer trunk with ``num_heads`` scalar value heads.

**Choice** (PPO here, HiPER later): a separate critic network rather than a value head on the policy trunk.
The value loss then never pulls on the policy's representation, the critic can use its own (larger) learning
rate (HiPER: actor 1e-6, critic 1e-5), and several heads can be read at different token positions (HiPER's
V_H, V_L, V_b), as in the released HiPER code. **Memory cost**: one more copy of the trunk's weights (all
but the LM head), its gradients and its AdamW moments: about 4x the trunk's size in fp32 (for a 1.5B model
~ 1.3B trunk params: +5 GB weights in fp32 (2.6 GB bf16), +10 GB AdamW state), plus the critic's
activations in the update. A head on the policy trunk would cost only ``hidden_size * num_heads`` more
parameters; for the offline tiny model either is negligible.

``critic(prompt_ids, response_ids)`` returns ``[B, 1 + T_resp, num_heads]``: index 0 is the value read at
the last prompt token (the state before the turn), index ``j + 1`` the value after response token ``j``
(e.g. right after ``</subgoal>``). Heads are zero-initialised, so initial values are 0.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["ValueModel", "trunk_of"]


def _base(lm: Any) -> Any:
    """The underlying transformers model (unwraps a PEFT model)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def trunk_of(lm: Any) -> nn.Module:
    """The transformer trunk of a causal LM (e.g. ``LlamaForCausalLM.model``), through a PEFT wrapper."""
    base = _base(lm)
    return getattr(base, base.base_model_prefix)


class ValueModel(nn.Module):
    """Trunk + linear value heads. Build with :meth:`from_policy` (a copy of the current policy trunk)."""

    def __init__(self, trunk: nn.Module, hidden_size: int, num_heads: int = 1, pad_token_id: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.Linear(hidden_size, num_heads)
        nn.init.zeros_(self.heads.weight)
        nn.init.zeros_(self.heads.bias)
        self.num_heads = num_heads
        self.pad_token_id = pad_token_id

    @classmethod
    def from_policy(cls, policy: Any, num_heads: int = 1) -> ValueModel:
        """A critic whose trunk is a deep copy of ``policy.model``'s trunk (trainable, same dtype/device)."""
        trunk = copy.deepcopy(trunk_of(policy.model))
        for p in trunk.parameters():
            p.requires_grad_(True)
        critic = cls(trunk, _base(policy.model).config.hidden_size, num_heads, policy.pad_token_id)
        param = next(trunk.parameters())
        return critic.to(device=param.device, dtype=param.dtype)

    @property
    def device(self) -> torch.device:
        return self.heads.weight.device

    def forward(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values [B, 1 + T_resp, K] float32, mask [B, 1 + T_resp] bool)``: values at the last prompt
        token and after each response token (left-padded prompts, right-padded responses)."""
        responses = response_ids if response_ids is not None else [[] for _ in prompt_ids]
        p_max = max(len(p) for p in prompt_ids)
        r_max = max((len(r) for r in responses), default=0)
        ids = torch.full((len(prompt_ids), p_max + r_max), self.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros(len(prompt_ids), 1 + r_max, dtype=torch.bool)
        for i, (p, r) in enumerate(zip(prompt_ids, responses, strict=True)):
            if not p:
                raise ValueError("every prompt needs at least one token")
            ids[i, p_max - len(p) : p_max + len(r)] = torch.tensor([*p, *r], dtype=torch.long)
            attn[i, p_max - len(p) : p_max + len(r)] = 1
            mask[i, : 1 + len(r)] = True
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        out = self.trunk(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev), use_cache=False)
        hidden = out.last_hidden_state[:, p_max - 1 :]
        values = self.heads(hidden.to(self.heads.weight.dtype)).float()
        mask = mask.to(dev)
        return values.masked_fill(~mask[..., None], 0.0), mask
