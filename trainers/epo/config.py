"""EPO settings: one config for both bases (``base="grpo"`` or ``"ppo"``).

:class:`EPOConfig` holds every field of the PPO config (a superset of GRPO's: the critic fields are simply
unused with ``base="grpo"``) plus EPO's own. The fields whose default differs between the two baselines
(``advantage``, ``group_size``, ``tasks_per_iteration``, ``lam``, ``normalize_advantages``) default to None,
which means "the chosen base's default", so ``python -m trainers epo --base ppo`` is PPO's setting plus EPO.
:meth:`EPOConfig.base_config` gives the baseline's own config with the same shared fields; it is built (and
so validated by the baseline's own checks) in ``__post_init__``.

EPO's coefficients (docs/methods.md, "EPO": the released ALFWorld/ScienceWorld commands): c_H = ``entropy_coef`` =
0.001, beta = ``epo_beta`` = 1, c_KL = ``kl_coef`` = 0.01, band kappa = (``epo_kappa_lo``, ``epo_kappa_hi``)
= (0, 2.0), alpha = ``epo_alpha`` = 0.1 on ALFWorld (:data:`EPO_ALPHA` lists 0.05 for ScienceWorld).
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, fields
from typing import Any

from trainers.core.config import TrainerConfig
from trainers.grpo.config import GRPOConfig
from trainers.ppo.config import PPOConfig

__all__ = ["BASES", "EPO_ALPHA", "EPOConfig"]

BASES: dict[str, type[TrainerConfig]] = {"grpo": GRPOConfig, "ppo": PPOConfig}
"""Base method name -> the baseline's config class."""

EPO_ALPHA: dict[str, float] = {"alfworld": 0.1, "scienceworld": 0.05}
"""The smoothing penalty's alpha in EPO's released commands, by benchmark."""

BASE_DEFAULTED: tuple[str, ...] = ("advantage", "group_size", "tasks_per_iteration", "lam", "normalize_advantages")
"""Fields that default to None in :class:`EPOConfig` and are filled with the chosen base's default."""


def _default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


@dataclass
class EPOConfig(PPOConfig):
    """EPO on a GRPO or PPO base: L = L_PG - c_H (mean_tok H - beta w(e) mean_tok P) + c_KL KL."""

    base: str = "grpo"
    """The policy-gradient method EPO plugs into: ``grpo`` (group advantages) or ``ppo`` (critic + GAE)."""
    output_dir: str = "runs/epo"
    """Run directory."""
    advantage: str | None = None  # type: ignore[assignment]
    """Advantage estimator; None: the base's default (grpo: ``grpo``, ppo: ``gae``)."""
    group_size: int | None = None  # type: ignore[assignment]
    """Rollouts per task; None: the base's default (grpo: 8, ppo: 1)."""
    tasks_per_iteration: int | None = None  # type: ignore[assignment]
    """Distinct tasks per iteration and process; None: the base's default (grpo: 8, ppo: 32)."""
    lam: float | None = None  # type: ignore[assignment]
    """GAE lambda; None: the base's default (grpo: 1.0, ppo: 0.95)."""
    normalize_advantages: bool | None = None  # type: ignore[assignment]
    """Standardise advantages over the batch; None: the base's default (grpo: False, ppo: True)."""
    kl_coef: float = 0.01
    """c_KL: weight of the low-variance KL to the initial (post-SFT) policy (EPO: 0.01)."""
    entropy_coef: float = 0.001
    """c_H: weight of the entropy regularisation, mean token entropy over all policy tokens of all turns
    (the loss gets -c_H H); it also scales the smoothing penalty (+c_H beta w(e) P). EPO: 0.001."""
    epo_beta: float = 1.0
    """beta: weight of the smoothing penalty inside the entropy term (EPO: 1)."""
    epo_alpha: float = 0.1
    """alpha: scale of the smoothing penalty P (EPO: 0.1 on ALFWorld, 0.05 on ScienceWorld)."""
    epo_kappa_lo: float = 0.0
    """kappa_l: lower edge of the entropy band as a multiple of the turn's historical entropy (EPO: 0)."""
    epo_kappa_hi: float = 2.0
    """kappa_r: upper edge of the entropy band as a multiple of the turn's historical entropy (EPO: 2.0)."""
    epo_history_window: int | None = None
    """Past iterations averaged into the historical entropy of a turn index; None: all of them (as EPO's
    released code)."""
    epo_phase_weighting: bool = True
    """Scale the smoothing penalty by EPO's phase weight w(e) (1 -> 0.83 over the first half of training,
    0.8 -> 0.04 over the second); False: w = 1 throughout."""
    epo_schedule_iterations: int | None = None
    """E, the iterations the phase schedule spans; None: ``iterations``. Set it explicitly when a run is
    extended by resuming with a larger ``iterations``, so the schedule does not jump."""
    epo_schedule_env_steps: int | None = None
    """Measure the phase schedule in env steps instead: e / E = (training env steps so far) / this (a run
    with an env-step budget sets the budget here); None: iterations."""
    epo_log_turns: int = 10
    """Turn indices 0..N-1 whose entropy and historical reference are logged (``epo/entropy_turn_{k}``)."""

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"base must be one of {sorted(BASES)}, got {self.base!r}")
        for name in BASE_DEFAULTED:
            if getattr(self, name) is None:
                setattr(self, name, _default(BASES[self.base], name))
        super().__post_init__()
        self.base_config()  # the baseline's own checks (GRPO: group_size >= 2)
        if self.entropy_coef < 0 or self.epo_beta < 0 or self.epo_alpha < 0:
            raise ValueError("entropy_coef, epo_beta and epo_alpha must be >= 0")
        if not 0 <= self.epo_kappa_lo <= self.epo_kappa_hi:
            raise ValueError(f"need 0 <= epo_kappa_lo <= epo_kappa_hi, got {self.epo_kappa_lo}, {self.epo_kappa_hi}")
        for name in ("epo_history_window", "epo_schedule_iterations", "epo_schedule_env_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.epo_log_turns < 0:
            raise ValueError(f"epo_log_turns must be >= 0, got {self.epo_log_turns}")

    @property
    def schedule_iterations(self) -> int:
        """E of the phase schedule."""
        return self.epo_schedule_iterations or self.iterations

    def base_config(self, **overrides: Any) -> TrainerConfig:
        """The baseline's config (``GRPOConfig`` / ``PPOConfig``) with this config's shared fields (EPO's
        own fields dropped; ``entropy_coef`` and ``kl_coef`` kept) and ``overrides`` applied."""
        cls = BASES[self.base]
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)
