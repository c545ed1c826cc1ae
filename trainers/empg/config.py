"""EMPG settings: GRPO's, with the ``empg`` estimator and its coefficients."""

from __future__ import annotations

from dataclasses import dataclass

from trainers.grpo.config import GRPOConfig

__all__ = ["EMPGConfig"]


@dataclass
class EMPGConfig(GRPOConfig):
    """EMPG ("Harnessing Uncertainty: Entropy-Modulated Policy Gradients for Long-Horizon LLM Agents", 2025):
    GRPO whose per-turn advantage is re-scaled by each turn's entropy and given a bonus for reaching a
    confident next turn (docs/methods.md, "EMPG")."""

    output_dir: str = "runs/empg"
    """Run directory."""
    advantage: str = "empg"
    """Advantage estimator (``empg``: the base estimator's advantage, modulated by entropy)."""
    empg_base: str = "grpo"
    """The estimator EMPG modulates (GRPO's episode advantage in the paper; ``gigpo``, ``rloo`` ... work too)."""
    empg_k: float = 1.0
    """k: sharpness of the self-confidence weight g(H) = exp(-k Ĥ) / mean exp(-k Ĥ)."""
    empg_k_next: float = 1.0
    """k': sharpness of the future-clarity bonus f(H_{t+1}) = exp(-k' Ĥ_{t+1})."""
    empg_zeta: float = 0.1
    """zeta: weight of the future-clarity bonus."""

    def __post_init__(self) -> None:
        super().__post_init__()
        from trainers.core.registry import ADVANTAGES

        if self.empg_base == "empg" or self.empg_base not in ADVANTAGES:
            raise ValueError(f"empg_base must be another registered estimator than 'empg' "
                             f"({ADVANTAGES.names()}), got {self.empg_base!r}")
        for name in ("empg_k", "empg_k_next", "empg_zeta"):
            value = getattr(self, name)
            if not 0.0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
