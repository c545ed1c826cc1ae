"""Reward terms every method can add to the env's reward (plain functions, not losses).

The formulas are written out in docs/methods.md ("Reward terms").
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["overlong_penalty"]


def overlong_penalty(length: Tensor, max_len: int, buffer: int) -> Tensor:
    """DAPO soft overlong reward (a reward term, added to the sequence's reward, <= 0).

    p(L) = min(-(L - (Lmax - B)) / B, 0): 0 up to Lmax - B, then falling linearly to -1 at L = Lmax;
    clamped at -1 beyond Lmax (DAPO). Returns a float tensor shaped like ``length``.
    """
    if not 0 < buffer <= max_len:
        raise ValueError(f"need 0 < buffer <= max_len, got buffer={buffer}, max_len={max_len}")
    length = length.to(torch.get_default_dtype()) if not length.is_floating_point() else length
    return (-(length - (max_len - buffer)) / buffer).clamp(min=-1.0, max=0.0)
