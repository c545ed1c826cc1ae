"""HiPER settings: PPO with a three-head critic, hierarchical advantage estimation and HiPER's shaping."""

from __future__ import annotations

from dataclasses import dataclass

from trainers.hiper.structure import Shaping
from trainers.ppo.config import PPOConfig

__all__ = ["SFT_SEGMENTS", "HiPERConfig"]

SFT_SEGMENTS = ("task_steps", "milestones")


@dataclass
class HiPERConfig(PPOConfig):
    """HiPER (arXiv 2602.16165): the ``hiper`` answer format, a separate critic with heads V_H, V_L, V_b,
    ``hae`` advantages put on the switch / subgoal / action tokens, PPO clip 0.2 + KL 0.01."""

    output_dir: str = "runs/hiper"
    """Run directory."""
    prompt_format: str = "hiper"
    """Agent format; it must have ``switch``, ``subgoal`` and ``action`` fields (``hiper``)."""
    advantage: str = "hae"
    """Advantage estimator; it must return HAE's extras (the keys of ``trainers.hiper.hae``: ``ADV_HIGH``,
    ``ADV_SWITCH``, ``HIGH_MASK`` ...)."""
    gamma: float = 1.0
    """Discount per turn."""
    lam: float = 1.0
    """lambda_L: GAE lambda of the low level (inside a segment)."""
    lam_high: float = 0.95
    """lambda_H: lambda of the semi-Markov high level (across segments)."""
    normalize_advantages: bool = True
    """Standardise A^L, A^H (segment-start turns only) and A^b over the batch, each separately."""
    kl_coef: float = 0.01
    """Low-variance KL to the frozen initial (post-SFT) policy."""
    critic_lr: float = 1e-5
    """Critic learning rate (actor 1e-6, critic 1e-5 in the paper)."""
    invalid_action_penalty: float = 0.0
    """The env's own invalid-action penalty; 0 because HiPER's ``invalid_penalty`` replaces it (both stack)."""
    invalid_penalty: float = 0.1
    """Shaping: subtracted on an invalid turn (the env executed nothing, or the answer was malformed)."""
    keep_penalty: float = 0.3
    """Shaping: keep_penalty * (#KEEP / T) per trajectory, spread evenly over its KEEP turns."""
    subgoal_change_penalty: float = 0.3
    """Shaping: subtracted on a KEEP turn whose subgoal text differs from the subgoal in effect."""
    train_tag_tokens: bool = True
    """The ``<switch>``/``</switch>`` ... tag tokens carry their span's advantage (False: only the content)."""
    value_coef_high: float = 1.0
    """Weight of V_H's clipped value loss (segment-start turns)."""
    value_coef_low: float = 1.0
    """Weight of V_L's clipped value loss (every turn)."""
    value_coef_switch: float = 1.0
    """Weight of V_b's clipped value loss (every turn)."""
    sft_segments: str = "task_steps"
    """What the SFT expert writes as its subgoal (``SWITCH`` when it changes): ``task_steps`` (a milestone with the
    navigation milestones before it, ``trainers.hiper.steps``) or ``milestones`` (every env milestone: one-turn
    segments for an expert that knows where things are)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        from trainers.core.prompts import get_format

        missing = {"switch", "subgoal", "action"} - set(get_format(self.prompt_format).fields)
        if missing:
            raise ValueError(f"HiPER needs a prompt format with switch/subgoal/action fields; "
                             f"{self.prompt_format!r} lacks {sorted(missing)}")
        if not 0 <= self.lam_high <= 1:
            raise ValueError(f"lam_high must be in [0, 1], got {self.lam_high}")
        for name in ("value_coef_high", "value_coef_low", "value_coef_switch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.sft_segments not in SFT_SEGMENTS:
            raise ValueError(f"sft_segments must be one of {SFT_SEGMENTS}, got {self.sft_segments!r}")
        self.shaping()  # validates the shaping magnitudes

    def shaping(self) -> Shaping:
        """The shaping magnitudes as a :class:`~trainers.hiper.structure.Shaping`."""
        return Shaping(self.invalid_penalty, self.keep_penalty, self.subgoal_change_penalty)
