"""Per-turn advantage estimators, registered by name in :data:`trainers.core.registry.ADVANTAGES`.

Every estimator has one signature, ``fn(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput``, and
works on flat 1-D tensors over all turns of all trajectories of a batch, ordered by trajectory then turn.
Formulas follow /work/shared/METHODS.md. Scans run in float64 Python loops over the turns (O(N)); inputs
are read as data (values never carry gradient into an advantage) and outputs have the rewards' dtype and
device. The trainer broadcasts a turn's advantage to the policy tokens of that turn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from trainers.core.registry import ADVANTAGES

__all__ = ["AdvantageConfig", "AdvantageOutput", "TurnBatch", "standardise"]

_OPTIONAL_FLOAT = ("values", "last_values", "v_high", "v_low", "v_switch")


@dataclass(frozen=True, eq=False)
class TurnBatch:
    """All turns of a batch of trajectories as flat tensors of length N (trajectory-major, turn-minor).

    Required: ``rewards`` (float, r_t), ``dones`` (float, 1 where the episode terminated at this turn; a
    truncated last turn has 0, and only a trajectory's last turn may be 1), ``traj_ids`` (long, each
    trajectory one contiguous block), ``group_ids`` (long, rollouts of the same task share it; constant
    within a trajectory), ``turn_idx`` (long, consecutive within a trajectory).
    Optional: ``values`` (V at the turn's prompt, for ``gae``), ``last_values`` (read only at the last turn
    of each trajectory: V of the state after it, bootstraps a truncated trajectory; 0 when None),
    ``state_keys`` (env state hash per turn, for ``gigpo``), and for ``hae``: ``seg_start`` (bool, turn
    starts a segment; a trajectory's first turn always does), ``v_high`` (V_H, read at segment starts),
    ``v_low`` (V_L after ``</subgoal>``), ``v_switch`` (V_b at the start of every turn).
    """

    rewards: Tensor
    dones: Tensor
    traj_ids: Tensor
    group_ids: Tensor
    turn_idx: Tensor
    values: Tensor | None = None
    last_values: Tensor | None = None
    state_keys: tuple[str, ...] | None = None
    seg_start: Tensor | None = None
    v_high: Tensor | None = None
    v_low: Tensor | None = None
    v_switch: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.rewards.shape[0] if self.rewards.dim() == 1 else -1
        for name in ("rewards", "dones", "traj_ids", "group_ids", "turn_idx", "seg_start", *_OPTIONAL_FLOAT):
            t = getattr(self, name)
            if t is not None and (t.dim() != 1 or t.shape[0] != n):
                raise ValueError(f"TurnBatch.{name} must be 1-D of length {n}, got shape {tuple(t.shape)}")
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

    @classmethod
    def from_nested(
        cls,
        rewards: Sequence[Sequence[float]],
        group_ids: Sequence[int] | None = None,
        terminated: Sequence[bool] | None = None,
        last_values: Sequence[float] | None = None,
        state_keys: Sequence[Sequence[str]] | None = None,
        **per_turn: Sequence[Sequence[float]] | None,
    ) -> TurnBatch:
        """Build a batch from per-trajectory lists (handy in tests and small scripts).

        ``group_ids`` and ``terminated`` (done at the last turn; default all True) and ``last_values``
        are per trajectory; ``state_keys`` and ``per_turn`` (``values``, ``seg_start``, ``v_high``,
        ``v_low``, ``v_switch``) are nested like ``rewards``.
        """
        m = len(rewards)
        groups = list(group_ids) if group_ids is not None else [0] * m
        term = list(terminated) if terminated is not None else [True] * m
        flat = [float(x) for traj in rewards for x in traj]
        lengths = [len(traj) for traj in rewards]
        dones = [float(term[i] and j == lengths[i] - 1) for i in range(m) for j in range(lengths[i])]

        def expand(per_traj: Sequence[float] | Sequence[int]) -> list:
            return [per_traj[i] for i in range(m) for _ in range(lengths[i])]

        kwargs: dict = {}
        if last_values is not None:
            kwargs["last_values"] = torch.tensor(expand(last_values), dtype=torch.float32)
        if state_keys is not None:
            kwargs["state_keys"] = tuple(k for traj in state_keys for k in traj)
        for name, nested in per_turn.items():
            if nested is not None:
                dtype = torch.bool if name == "seg_start" else torch.float32
                kwargs[name] = torch.tensor([x for traj in nested for x in traj], dtype=dtype)
        return cls(
            rewards=torch.tensor(flat, dtype=torch.float32),
            dones=torch.tensor(dones, dtype=torch.float32),
            traj_ids=torch.tensor(expand(list(range(m))), dtype=torch.long),
            group_ids=torch.tensor(expand(groups), dtype=torch.long),
            turn_idx=torch.tensor([j for n in lengths for j in range(n)], dtype=torch.long),
            **kwargs,
        )


@dataclass(frozen=True)
class AdvantageConfig:
    """Hyper-parameters shared by the estimators (each reads the ones it needs)."""

    gamma: float = 1.0
    """Discount per turn (``gae``, ``hae``)."""
    lam: float = 1.0
    """GAE lambda (``gae``; lambda_L of ``hae``)."""
    lam_high: float = 0.95
    """lambda_H of ``hae``'s semi-Markov high level."""
    norm_by_std: bool = True
    """Divide group-centred returns by (std + eps) (``grpo``, ``gigpo``); False gives Dr.GRPO centring."""
    gigpo_omega: float = 1.0
    """Weight of GiGPO's step (anchor-state) advantage."""
    gigpo_gamma: float = 0.95
    """Discount of GiGPO's step return."""
    eps: float = 1e-6
    """Added to the std in every normalisation."""

    def __post_init__(self) -> None:
        for name in ("gamma", "lam", "lam_high", "gigpo_gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AdvantageConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.eps < 0:
            raise ValueError(f"AdvantageConfig.eps must be >= 0, got {self.eps}")


@dataclass(frozen=True, eq=False)
class AdvantageOutput:
    """Per-turn results: ``advantages`` [N], ``returns`` [N] value targets (None without a critic),
    ``extras``, further named per-turn tensors (``hae``: adv_high, adv_switch, ret_high, ret_switch), and
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


def _out(x: list[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64).to(dtype=like.dtype, device=like.device)


def _need(batch: TurnBatch, name: str, *fields: str) -> None:
    missing = [f for f in fields if getattr(batch, f) is None]
    if missing:
        raise ValueError(f"advantage estimator {name!r} needs TurnBatch fields {missing}")


def _scan(
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


def _group_centre(x: Tensor, groups: Tensor, eps: float, norm_by_std: bool) -> Tensor:
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
    adv = _group_centre(ret, groups, cfg.eps, cfg.norm_by_std)[inv]
    return AdvantageOutput(advantages=_out(adv, batch.rewards))


@ADVANTAGES.register("rloo")
def rloo(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """RLOO: A_i = R_i - mean_{j in G, j != i} R_j = n/(n-1) (R_i - mean_G R); a group of one gives 0."""
    ret, groups, inv = _episodes(batch)
    _, ginv, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    n = counts[ginv].double()
    adv = _group_centre(ret, groups, cfg.eps, norm_by_std=False) * n / (n - 1).clamp_min(1)
    return AdvantageOutput(advantages=_out(adv[inv], batch.rewards))


@ADVANTAGES.register("gae")
def gae(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """GAE per trajectory with turn-level values V_t = ``values``.

    delta_t = r_t + gamma V_{t+1} (1 - done_t) - V_t, A_t = delta_t + gamma lam (1 - done_t) A_{t+1};
    past the last turn V = ``last_values`` (bootstraps a truncated trajectory; 0 when None) and A = 0.
    Returns (value targets) R_t = A_t + V_t.
    """
    _need(batch, "gae", "values")
    assert batch.values is not None
    n = batch.num_turns
    v_end = batch.last_values.tolist() if batch.last_values is not None else [0.0] * n
    adv = _scan(
        batch.rewards.tolist(),
        (1 - batch.dones).tolist(),
        batch.values.tolist(),
        batch.is_last().tolist(),
        v_end,
        [cfg.gamma] * n,
        cfg.lam,
    )
    adv_t = _out(adv, batch.rewards)
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
    _need(batch, "gigpo", "state_keys")
    assert batch.state_keys is not None
    n = batch.num_turns
    episode = grpo(batch, cfg).advantages
    g = _scan(
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
    step = _group_centre(torch.tensor(g, dtype=torch.float64), torch.tensor(ids, dtype=torch.long), cfg.eps,
                         cfg.norm_by_std)
    step_t = _out(step, batch.rewards)
    sizes = Counter(ids).values()  # turns per anchor group; a turn in a group of c sees c
    return AdvantageOutput(
        advantages=episode + cfg.gigpo_omega * step_t,
        extras={"adv_episode": episode, "adv_step": step_t, "step_return": _out(g, batch.rewards)},
        stats={"anchor_size": sum(c * c for c in sizes) / max(n, 1),
               "anchor_shared_frac": sum(c for c in sizes if c > 1) / max(n, 1)},
    )


@ADVANTAGES.register("hae")
def hae(batch: TurnBatch, cfg: AdvantageConfig) -> AdvantageOutput:
    """HiPER's hierarchical advantage estimation (METHODS.md, HiPER section).

    Segment k spans turns s_k..e_k (d_k turns); a trajectory's first turn always starts one.
    boot_k = V_H(s_{k+1}) when a next segment exists; at a truncated end boot^L_k = V_L(e_k) (also used by
    the switch) and boot^H_k = V_H(s_k); at a terminated end 0.
    Low:  delta^L_t = r_t + gamma (1-done_t) V' - V_L(t), V' = V_L(t+1) inside, boot^L_k at e_k;
          A^L_t = delta^L_t + gamma lam (1-done_t) A^L_{t+1}, A^L_{e_k+1} = 0; R^L = A^L + V_L.
    High: Rseg_k = sum_{j<d_k} gamma^j r_{s_k+j};
          delta^H_k = Rseg_k + gamma^{d_k} (1-done_{e_k}) boot^H_k - V_H(s_k);
          A^H_k = delta^H_k + gamma^{d_k} lam_high (1-done_{e_k}) A^H_{k+1}; R^H = A^H + V_H.
    Switch: G^b_t = r_t + gamma G^b_{t+1} inside the segment, G^b_{e_k+1} = boot^L_k; A^b_t = G^b_t - V_b(t).
    Output: ``advantages`` = A^L, ``returns`` = R^L; extras ``adv_high`` / ``ret_high`` (A^H_k, R^H_k on
    segment-start turns, 0 elsewhere), ``adv_switch`` (A^b), ``ret_switch`` (G^b), ``high_mask`` (1 on the
    segment-start turns used, turn 0 included). No standardisation here: the trainer applies
    :func:`standardise` to each of the three (``adv_high`` masked by ``high_mask``).
    """
    _need(batch, "hae", "seg_start", "v_high", "v_low", "v_switch")
    assert batch.seg_start is not None and batch.v_high is not None
    assert batch.v_low is not None and batch.v_switch is not None
    n, gamma = batch.num_turns, cfg.gamma
    r, nd = batch.rewards.tolist(), (1 - batch.dones).tolist()
    last = batch.is_last().tolist()
    start = [bool(s) or i == 0 or last[i - 1] for i, s in enumerate(batch.seg_start.tolist())]
    vh, vl, vb = batch.v_high.tolist(), batch.v_low.tolist(), batch.v_switch.tolist()

    seg_end = [last[i] or start[i + 1] for i in range(n)]  # last[n-1] is True, so i + 1 < n here
    boot_low = [0.0] * n  # read at segment ends only
    for i in range(n):
        if seg_end[i]:
            boot_low[i] = vh[i + 1] if not last[i] else (vl[i] if nd[i] else 0.0)
    adv_low = _scan(r, nd, vl, seg_end, boot_low, [gamma] * n, cfg.lam)
    ret_switch = _scan(r, nd, [0.0] * n, seg_end, boot_low, [gamma] * n, 1.0)

    # segment-level quantities, in order; a segment's high-level chain ends with its trajectory
    starts = [i for i in range(n) if start[i]]
    ends = [i for i in range(n) if seg_end[i]]
    rseg, disc, seg_nd, seg_last, v_seg = [], [], [], [], []
    for s, e in zip(starts, ends, strict=True):
        rseg.append(math.fsum(gamma**j * r[s + j] for j in range(e - s + 1)))
        disc.append(gamma ** (e - s + 1))
        seg_nd.append(nd[e])
        seg_last.append(last[e])
        v_seg.append(vh[s])
    # boot^H: next segment's V_H inside a trajectory (read by _scan from v_seg), V_H(s_k) if truncated
    adv_seg = _scan(rseg, seg_nd, v_seg, seg_last, v_seg, disc, cfg.lam_high)

    adv_high, ret_high = [0.0] * n, [0.0] * n
    for k, s in enumerate(starts):
        adv_high[s], ret_high[s] = adv_seg[k], adv_seg[k] + v_seg[k]
    like = batch.rewards
    adv_low_t = _out(adv_low, like)
    ret_switch_t = _out(ret_switch, like)
    return AdvantageOutput(
        advantages=adv_low_t,
        returns=adv_low_t + _out(vl, like),
        extras={
            "adv_high": _out(adv_high, like),
            "ret_high": _out(ret_high, like),
            "adv_switch": ret_switch_t - _out(vb, like),
            "ret_switch": ret_switch_t,
            "high_mask": _out([float(x) for x in start], like),
        },
    )
