"""A MaskablePPO policy that scores each command slot with one shared network (needs torch + sb3-contrib).

The observation of :class:`~pilot_envs.wrappers.sb3.FeaturizeObservation` has one feature row per
command slot, and a slot's meaning changes every step. A plain ``MultiInputPolicy`` flattens all rows
into one vector and must learn what to do with each slot position separately. This policy instead
follows the DRRN idea (He et al., 2016, "Deep Reinforcement Learning with a Natural Language Action
Space"): it encodes the state once, encodes every command row with the *same* encoder, and scores each
(state, command) pair with the same small network, so what it learns about ``take mug 1 from desk 1``
in slot 3 applies in every slot::

    s     = MLP_state([text, task, plan, progress, subgoals_done, elapsed, action_mask])   (hidden)
    c_i   = MLP_cmd(commands[i])                                                            (hidden)
    logit_i = MLP_score([s, c_i, s * c_i])                                                  (1)
    value   = MLP_value(s)

Masked slots are handled by MaskablePPO (their logits are replaced by -inf). Use it as::

    from sb3_contrib import MaskablePPO
    from pilot_envs.wrappers.sb3_policy import CommandScoringPolicy

    model = MaskablePPO(CommandScoringPolicy, env, policy_kwargs={"hidden": 128})
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["CommandScorer", "CommandScoringPolicy", "STATE_KEYS"]

STATE_KEYS = ("text", "task", "plan", "progress", "subgoals_done", "elapsed", "action_mask")
"""Keys of the featurised observation that describe the state (``commands`` describes the slots)."""


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class CommandScorer(BaseFeaturesExtractor):
    """Features ``[logit_1 .. logit_K, state embedding]``: one score per command slot, then the state.

    ``features_dim`` = ``K + hidden``. :class:`CommandScoringPolicy` reads the scores as the action logits
    and feeds the state embedding to the value head.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 128):
        missing = [k for k in (*STATE_KEYS, "commands") if k not in observation_space.spaces]
        if missing:
            raise ValueError(f"CommandScorer needs FeaturizeObservation's keys; missing {missing}")
        slots, row = observation_space["commands"].shape
        super().__init__(observation_space, features_dim=slots + hidden)
        state_dim = sum(int(observation_space[k].shape[0]) for k in STATE_KEYS)
        self.slots, self.hidden = slots, hidden
        self.state_net = _mlp([state_dim, hidden, hidden])
        self.command_net = _mlp([row, hidden, hidden])
        self.score_net = nn.Sequential(_mlp([3 * hidden, hidden]), nn.Linear(hidden, 1))

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        state = self.state_net(th.cat([observations[k].flatten(1) for k in STATE_KEYS], dim=1))
        # only filled slots are encoded and scored (most slots are padding); empty slots get logit 0,
        # which MaskablePPO masks anyway
        batch, slot = th.nonzero(observations["action_mask"] > 0.5, as_tuple=True)
        commands = self.command_net(observations["commands"][batch, slot])  # (N, hidden)
        states = state[batch]
        scores = self.score_net(th.cat([states, commands, states * commands], dim=-1)).squeeze(-1)
        logits = state.new_zeros(state.shape[0], self.slots).index_put((batch, slot), scores)
        return th.cat([logits, state], dim=1)


class _SplitHeads(nn.Module):
    """Stands in for SB3's ``MlpExtractor``: the actor latent is the K scores, the critic's an MLP of the state."""

    def __init__(self, slots: int, hidden: int, value_layers: list[int]):
        super().__init__()
        self.slots = slots
        self.value = _mlp([hidden, *value_layers])
        self.latent_dim_pi = slots
        self.latent_dim_vf = value_layers[-1] if value_layers else hidden

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return features[:, : self.slots]

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value(features[:, self.slots :])


class CommandScoringPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy over :class:`CommandScorer` (module docstring).

    Keyword arguments: ``hidden`` (width of every layer, default 128) and ``value_layers`` (the value
    head's hidden layers, default ``[hidden]``); everything else goes to ``MaskableActorCriticPolicy``.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Any,
        *args: Any,
        hidden: int = 128,
        value_layers: list[int] | None = None,
        **kwargs: Any,
    ):
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError("CommandScoringPolicy needs Discrete actions (DiscreteCommands)")
        slots = observation_space["commands"].shape[0]
        if action_space.n != slots:
            raise ValueError(f"{action_space.n} actions but {slots} command slots")
        self._hidden = hidden
        self._value_layers = list(value_layers) if value_layers is not None else [hidden]
        kwargs.setdefault("features_extractor_class", CommandScorer)
        kwargs.setdefault("features_extractor_kwargs", {"hidden": hidden})
        kwargs.setdefault("activation_fn", nn.ReLU)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = _SplitHeads(int(self.action_space.n), self._hidden, self._value_layers)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # the scores are the logits: no extra linear layer between them and the distribution
        self.action_net = nn.Identity()
        if self.ortho_init:  # a near-uniform initial policy, as SB3's 0.01 gain on its action_net gives
            score_out = self.features_extractor.score_net[-1]
            nn.init.orthogonal_(score_out.weight, gain=0.01)
            nn.init.zeros_(score_out.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(hidden=self._hidden, value_layers=self._value_layers)
        return data
