"""The token-level batch of one RL iteration: every turn as a training row, plus checked per-row extras.

:class:`RLBatch` holds the generic fields every method uses (prompts, responses, sampling log-probs, the policy
token mask, rewards, advantages, loss weights). What a method adds lives in two checked mappings whose keys are
constants of that method (``trainers.hiper.hae.SEG_START``, ``trainers.epo.trainer.ENTROPY_REF`` ...):
``extras`` (one entry per row, i.e. per turn) and ``traj_extras`` (one entry per trajectory). A value of the
wrong length is refused when stored, and reading a key that is not there names it (:meth:`Extras.need`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainers.core.advantages import AdvantageOutput
from trainers.core.rollout import Trajectory, Turn

__all__ = ["Extras", "RLBatch", "pad_rows"]


def pad_rows(rows: Sequence[Sequence[float]], width: int, value: float = 0.0) -> Tensor:
    """Rows of floats as a float32 ``[len(rows), width]`` tensor, right-padded with ``value``."""
    out = torch.full((len(rows), width), value, dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out


class Extras(dict):
    """A ``dict`` whose values all have length ``size`` (tensors: their first dimension; sequences: ``len``).

    Args:
        size: the number of rows (or trajectories) every value describes.
        what: what one entry is, for error messages (``"turn"``, ``"trajectory"``).
    """

    def __init__(self, size: int, what: str) -> None:
        super().__init__()
        self.size = size
        self.what = what

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Tensor):
            n = value.shape[0] if value.dim() else None
        else:
            n = len(value) if hasattr(value, "__len__") else None
        if n != self.size:
            raise ValueError(f"extras[{key!r}] must hold one entry per {self.what} ({self.size}), got "
                             f"{'a scalar' if n is None else n}")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]

    def need(self, key: str, user: str) -> Any:
        """``self[key]``; a ``KeyError`` naming the key, ``user`` (who reads it) and the keys present."""
        try:
            return self[key]
        except KeyError:
            raise KeyError(f"{user} needs per-{self.what} extras[{key!r}]; present: {sorted(self)}") from None


@dataclass
class RLBatch:
    """Every turn of an iteration as one training row (trajectory-major, turn-minor)."""

    trajectories: list[Trajectory]
    turns: list[Turn]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    old_logprobs: Tensor
    """[N, T] sampling log-probs, 0 on padding."""
    mask: Tensor
    """[N, T] bool: policy tokens (the turns' ``response_mask``)."""
    turn_idx: Tensor
    """[N] turn index of each row."""
    rewards: Tensor | None = None
    """[N] per-turn rewards from the trainer's ``score``."""
    advantages: Tensor | None = None
    """[N, T] per-token advantages."""
    weights: Tensor | None = None
    """[N, T] float per-token loss weights (0 = untrained)."""
    ref_logprobs: Tensor | None = None
    """[N, T] reference log-probs (when ``kl_coef > 0``)."""
    adv_output: AdvantageOutput | None = None
    extras: Extras = field(init=False)
    """Per-row data a method adds (one entry per turn), under the method's key constants."""
    traj_extras: Extras = field(init=False)
    """Per-trajectory data a method adds, under the method's key constants."""

    def __post_init__(self) -> None:
        self.extras = Extras(len(self.turns), "turn")
        self.traj_extras = Extras(len(self.trajectories), "trajectory")

    @classmethod
    def from_trajectories(cls, trajs: list[Trajectory]) -> RLBatch:
        """The rows of ``trajs`` (turns flattened trajectory-major), padded to the longest response."""
        turns = [t for traj in trajs for t in traj.turns]
        width = max((len(t.response_ids) for t in turns), default=0)
        return cls(
            trajectories=trajs,
            turns=turns,
            prompt_ids=[t.prompt_ids for t in turns],
            response_ids=[t.response_ids for t in turns],
            old_logprobs=pad_rows([t.old_logprobs for t in turns], width),
            mask=pad_rows([t.response_mask for t in turns], width) > 0,
            turn_idx=torch.tensor([t.turn_idx for t in turns], dtype=torch.long),
        )

    def __len__(self) -> int:
        return len(self.turns)
