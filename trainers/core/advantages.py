"""Per-turn advantage estimators every method can use, registered by name in
:data:`trainers.core.registry.ADVANTAGES`: ``grpo``, ``rloo``, ``gae``, ``gigpo`` (a method's own estimator
lives in its package, e.g. ``trainers/hiper/hae.py``).

Every estimator has one signature, ``fn(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput``, and
works on flat 1-D tensors over all turns of all trajectories of a batch, ordered by trajectory then turn.
The formulas are written out in docs/methods.md ("Advantage estimators"). Scans run in float64 Python loops over the turns (O(N)); inputs
are read as data (values never carry gradient into an advantage) and outputs have the rewards' dtype and
device. The trainer broadcasts a turn's advantage to the policy tokens of that turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from trainers.core.registry import ADVANTAGES

__all__ = ["AdvantageConfig", "AdvantageOutput", "TurnBatch", "as_output", "discounted_scan", "group_centre", "standardise"]

@dataclass(frozen=True, eq=False)
class TurnBatch:
    """All turns of a batch of trajectories as flat tensors of length N (trajectory-major, turn-minor).

    Required: ``rewards`` (float, r_t), ``dones`` (float, 1 where the episode terminated at this turn; a
    truncated last turn has 0, and only a trajectory's last turn may be 1), ``traj_ids`` (long, each
    trajectory one contiguous block), ``group_ids`` (long, rollouts of the same task share it; constant
    within a trajectory), ``turn_idx`` (long, consecutive within a trajectory).
    Optional: ``values`` (V at the turn's prompt, for ``gae``), ``last_values`` (read only at the last turn
    of each trajectory: V of the state after it, bootstraps a truncated trajectory; 0 when None),
    ``state_keys`` (env state hash per turn, for ``gigpo``), and ``extras``: further per-turn 1-D tensors
    of length N that a method's estimator reads, under keys that are constants of that method (e.g.
    ``trainers.hiper.hae.SEG_START``); :meth:`extra` names a missing key.
    """

    rewards: Tensor
    dones: Tensor
    traj_ids: Tensor
    group_ids: Tensor
    turn_idx: Tensor
    values: Tensor | None = None
    last_values: Tensor | None = None
    state_keys: tuple[str, ...] | None = None
    extras: Mapping[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.rewards.shape[0] if self.rewards.dim() == 1 else -1
        named = {k: getattr(self, k) for k in ("rewards", "dones", "traj_ids", "group_ids", "turn_idx", "values",
                                                "last_values")}
        for name, t in [*named.items(), *((f"extras[{k!r}]", v) for k, v in self.extras.items())]:
            if t is not None and (not isinstance(t, Tensor) or t.dim() != 1 or t.shape[0] != n):
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"TurnBatch.{name} must be a 1-D tensor of length {n}, got {shape}")
        if self.state_keys is not None and len(self.state_keys) != n:
            raise ValueError(f"TurnBatch.state_keys has {len(self.state_keys)} entries for {n} turns")
        if not self.rewards.is_floating_point() or not self.dones.is_floating_point():
            raise TypeError("TurnBatch.rewards and dones must be floating point")
        if any(t.is_floating_point() for t in (self.traj_ids, self.group_ids, self.turn_idx)):
            raise TypeError("TurnBatch.traj_ids, group_ids and turn_idx must be integer tensors")
        if n == 0:
            return
        if not bool(((self.dones == 0) | (self.dones == 1)).all()):
            raise ValueError("TurnBatch.dones must be 0 or 1")
        same = self.traj_ids[1:] == self.traj_ids[:-1]
        if torch.unique(self.traj_ids).numel() != int((~same).sum()) + 1:
            raise ValueError("each trajectory must be one contiguous block of turns")
        if not bool((self.turn_idx[1:][same] == self.turn_idx[:-1][same] + 1).all()):
            raise ValueError("turn_idx must increase by 1 within a trajectory")
        if not bool((self.group_ids[1:][same] == self.group_ids[:-1][same]).all()):
            raise ValueError("group_ids must be constant within a trajectory")
        if bool((self.dones[:-1][same] != 0).any()):
            raise ValueError("only the last turn of a trajectory may have done=1")

    @property
    def num_turns(self) -> int:
        return int(self.rewards.shape[0])

    def is_last(self) -> Tensor:
        """Bool [N]: the turn is the last of its trajectory."""
        last = torch.ones_like(self.traj_ids, dtype=torch.bool)
        last[:-1] = self.traj_ids[1:] != self.traj_ids[:-1]
        return last

    def need(self, user: str, *names: str) -> None:
        """Raise a ``ValueError`` naming every field of ``names`` that is None (``user``: who needs them)."""
        missing = [f for f in names if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{user} needs TurnBatch fields {missing}")

    def extra(self, key: str, user: str) -> Tensor:
        """``extras[key]``; a ``KeyError`` naming the key, ``user`` (who reads it) and the keys present."""
        try:
            return self.extras[key]
        except KeyError:
            raise KeyError(f"{user} needs TurnBatch extras[{key!r}]; the batch has {sorted(self.extras)}") from None

    @classmethod
    def from_nested(
        cls,
        rewards: Sequence[Sequence[float]],
        group_ids: Sequence[int] | None = None,
        terminated: Sequence[bool] | None = None,
        last_values: Sequence[float] | None = None,
        state_keys: Sequence[Sequence[str]] | None = None,
        values: Sequence[Sequence[float]] | None = None,
        extras: Mapping[str, Sequence[Sequence[float | bool]]] | None = None,
    ) -> TurnBatch:
        """Build a batch from per-trajectory lists (handy in tests and small scripts).

        ``group_ids`` and ``terminated`` (done at the last turn; default all True) and ``last_values``
        are per trajectory; ``state_keys``, ``values`` and each of ``extras`` are nested like ``rewards``
        (an extra of bools becomes a bool tensor, anything else float32).
        """
        m = len(rewards)
        groups = list(group_ids) if group_ids is not None else [0] * m
        term = list(terminated) if terminated is not None else [True] * m
        flat = [float(x) for traj in rewards for x in traj]
        lengths = [len(traj) for traj in rewards]
        dones = [float(term[i] and j == lengths[i] - 1) for i in range(m) for j in range(lengths[i])]

        def expand(per_traj: Sequence[float] | Sequence[int]) -> list:
            return [per_traj[i] for i in range(m) for _ in range(lengths[i])]

        def flat_tensor(nested: Sequence[Sequence[float | bool]]) -> Tensor:
            items = [x for traj in nested for x in traj]
            dtype = torch.bool if items and all(isinstance(x, bool) for x in items) else torch.float32
            return torch.tensor(items, dtype=dtype)

        return cls(
            rewards=torch.tensor(flat, dtype=torch.float32),
            dones=torch.tensor(dones, dtype=torch.float32),
            traj_ids=torch.tensor(expand(list(range(m))), dtype=torch.long),
            group_ids=torch.tensor(expand(groups), dtype=torch.long),
            turn_idx=torch.tensor([j for n in lengths for j in range(n)], dtype=torch.long),
            values=None if values is None else flat_tensor(values),
            last_values=None if last_values is None else torch.tensor(expand(last_values), dtype=torch.float32),
            state_keys=None if state_keys is None else tuple(k for traj in state_keys for k in traj),
            extras={k: flat_tensor(v) for k, v in (extras or {}).items()},
        )


@dataclass(frozen=True)
class AdvantageConfig:
    """Hyper-parameters shared by the estimators (each reads the ones it needs)."""

    gamma: float = 1.0
    """Discount per turn (``gae``)."""
    lam: float = 1.0
    """GAE lambda (``gae``)."""
    norm_by_std: bool = True
    """Divide group-centred returns by (std + eps) (``grpo``, ``gigpo``); False gives Dr.GRPO centring."""
    gigpo_omega: float = 1.0
    """Weight of GiGPO's step (anchor-state) advantage."""
    gigpo_gamma: float = 0.95
    """Discount of GiGPO's step return."""
    eps: float = 1e-6
    """Added to the std in every normalisation."""

    def __post_init__(self) -> None:
        for name in ("gamma", "lam", "gigpo_gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AdvantageConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.eps < 0:
            raise ValueError(f"AdvantageConfig.eps must be >= 0, got {self.eps}")


@dataclass(frozen=True, eq=False)
class AdvantageOutput:
    """Per-turn results: ``advantages`` [N], ``returns`` [N] value targets (None without a critic),
    ``extras``, further named per-turn tensors (under keys the estimator defines, e.g. ``gigpo``'s
    ``adv_step``), and
    ``stats``, scalar diagnostics of the estimator that the trainer logs as ``adv/<name>``."""

    advantages: Tensor
    returns: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def standardise(x: Tensor, mask: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """(x - mean) / (std + eps) over the entries where ``mask`` is true (all when None), 0 elsewhere.

    std is the unbiased sample std (as ``torch.std``); fewer than two entries give zeros.
    """
    m = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool()
    count = m.sum()
    xm = torch.where(m, x, torch.zeros_like(x))
    mean = xm.sum() / count.clamp_min(1)
    dev = torch.where(m, x - mean, torch.zeros_like(x))
    std = ((dev**2).sum() / (count - 1).clamp_min(1)).sqrt()
    return torch.where(m, dev / (std + eps), torch.zeros_like(x))


# ---------------------------------------------------------------------------------------------- helpers


def as_output(x: list[float] | Tensor, like: Tensor) -> Tensor:
    """``x`` as a tensor with the dtype and device of ``like`` (estimators return the rewards' dtype)."""
    return torch.as_tensor(x, dtype=torch.float64).to(dtype=like.dtype, device=like.device)


def discounted_scan(
    r: list[float],
    nd: list[float],
    v: list[float],
    end: list[bool],
    v_end: list[float],
    disc: list[float],
    lam: float,
) -> list[float]:
    """Backward GAE over chains that stop where ``end`` is true (O(N)).

    delta_i = r_i + disc_i * nd_i * V' - v_i, with V' = v_{i+1} inside a chain and v_end_i at its end;
    A_i = delta_i + disc_i * lam * nd_i * A_{i+1}, A = 0 past a chain's end. nd = 1 - done.
    """
    adv = [0.0] * len(r)
    nxt = 0.0
    for i in reversed(range(len(r))):
        if end[i]:
            nxt, v_next = 0.0, v_end[i]
        else:
            v_next = v[i + 1]
        nxt = r[i] + disc[i] * nd[i] * (v_next + lam * nxt) - v[i]
        adv[i] = nxt
    return adv


def group_centre(x: Tensor, groups: Tensor, eps: float, norm_by_std: bool) -> Tensor:
    """(x - mean_G x) / (std_G x + eps) per group (unbiased std; float64); groups of one give 0."""
    _, inv, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    x = x.double()
    mean = torch.zeros(counts.numel(), dtype=torch.float64, device=x.device).index_add_(0, inv, x) / counts
    dev = x - mean[inv]
    if norm_by_std:
        var = torch.zeros_like(mean).index_add_(0, inv, dev**2) / (counts - 1).clamp_min(1)
        dev = dev / (var.sqrt()[inv] + eps)
    return torch.where(counts[inv] > 1, dev, torch.zeros_like(dev))


def _episodes(batch: TurnBatch) -> tuple[Tensor, Tensor, Tensor]:
    """(R per trajectory = sum of its rewards, group per trajectory, turn -> trajectory index)."""
    _, inv = torch.unique_consecutive(batch.traj_ids, return_inverse=True)
    m = int(inv.max()) + 1 if inv.numel() else 0
    ret = torch.zeros(m, dtype=torch.float64, device=inv.device).index_add_(0, inv, batch.rewards.double())
    groups = torch.zeros(m, dtype=torch.long, device=inv.device).scatter_(0, inv, batch.group_ids)
    return ret, groups, inv


# ------------------------------------------------------------------------------------------- estimators


@ADVANTAGES.register("grpo")
def grpo(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """GRPO: A_i = (R_i - mean_G R) / (std_G R + eps), R_i = sum_t r_t, broadcast to every turn of i.

    std_G is the unbiased sample std (``torch.std``, as verl). A group of one gives A = 0 (no baseline).
    """
    ret, groups, inv = _episodes(batch)
    adv = group_centre(ret, groups, cfg.eps, cfg.norm_by_std)[inv]
    return AdvantageOutput(advantages=as_output(adv, batch.rewards))


@ADVANTAGES.register("rloo")
def rloo(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """RLOO: A_i = R_i - mean_{j in G, j != i} R_j = n/(n-1) (R_i - mean_G R); a group of one gives 0."""
    ret, groups, inv = _episodes(batch)
    _, ginv, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    n = counts[ginv].double()
    adv = group_centre(ret, groups, cfg.eps, norm_by_std=False) * n / (n - 1).clamp_min(1)
    return AdvantageOutput(advantages=as_output(adv[inv], batch.rewards))


@ADVANTAGES.register("gae")
def gae(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """GAE per trajectory with turn-level values V_t = ``values``.

    delta_t = r_t + gamma V_{t+1} (1 - done_t) - V_t, A_t = delta_t + gamma lam (1 - done_t) A_{t+1};
    past the last turn V = ``last_values`` (bootstraps a truncated trajectory; 0 when None) and A = 0.
    Returns (value targets) R_t = A_t + V_t.
    """
    batch.need("advantage estimator 'gae'", "values")
    assert batch.values is not None
    n = batch.num_turns
    v_end = batch.last_values.tolist() if batch.last_values is not None else [0.0] * n
    adv = discounted_scan(
        batch.rewards.tolist(),
        (1 - batch.dones).tolist(),
        batch.values.tolist(),
        batch.is_last().tolist(),
        v_end,
        [cfg.gamma] * n,
        cfg.lam,
    )
    adv_t = as_output(adv, batch.rewards)
    return AdvantageOutput(advantages=adv_t, returns=adv_t + batch.values.detach().to(adv_t.dtype))


@ADVANTAGES.register("gigpo")
def gigpo(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """GiGPO: A_t = A^E + omega A^S.

    A^E is GRPO's episode advantage. A^S: the turns of a task group with the same ``state_keys`` form an
    anchor group; G_t = sum_k gigpo_gamma^k r_{t+k} (within the trajectory) is normalised in it,
    (G_t - mean) / (std + eps) (unbiased std); an anchor group of one gives A^S = 0.
    Extras: ``adv_episode`` (A^E), ``adv_step`` (A^S), ``step_return`` (G). Stats: ``anchor_size`` (mean
    size of a turn's anchor group), ``anchor_shared_frac`` (turns whose anchor group has another turn: the
    turns A^S can reach).
    """
    batch.need("advantage estimator 'gigpo'", "state_keys")
    assert batch.state_keys is not None
    n = batch.num_turns
    episode = grpo(batch, cfg).advantages
    g = discounted_scan(
        batch.rewards.tolist(),
        [1.0] * n,
        [0.0] * n,
        batch.is_last().tolist(),
        [0.0] * n,
        [cfg.gigpo_gamma] * n,
        1.0,
    )
    anchors: dict[tuple[int, str], int] = {}
    ids = [
        anchors.setdefault((grp, key), len(anchors))
        for grp, key in zip(batch.group_ids.tolist(), batch.state_keys, strict=True)
    ]
    step = group_centre(torch.tensor(g, dtype=torch.float64), torch.tensor(ids, dtype=torch.long), cfg.eps,
                         cfg.norm_by_std)
    step_t = as_output(step, batch.rewards)
    sizes = Counter(ids).values()  # turns per anchor group; a turn in a group of c sees c
    return AdvantageOutput(
        advantages=episode + cfg.gigpo_omega * step_t,
        extras={"adv_episode": episode, "adv_step": step_t, "step_return": as_output(g, batch.rewards)},
        stats={"anchor_size": sum(c * c for c in sizes) / max(n, 1),
               "anchor_shared_frac": sum(c for c in sizes if c > 1) / max(n, 1)},
    )
