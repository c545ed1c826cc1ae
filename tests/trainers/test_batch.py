"""Extensible batch records: per-turn and per-trajectory extras are length-checked when stored, and a reader that
misses a key gets an error naming it (``TurnBatch.extras`` for estimators, ``RLBatch.extras`` for trainers)."""

from __future__ import annotations

import pytest
import torch

from trainers.core.advantages import TurnBatch
from trainers.core.batch import Extras, RLBatch


def _rl_batch(n: int) -> RLBatch:
    return RLBatch(trajectories=[], turns=[None] * n, prompt_ids=[[1]] * n, response_ids=[[2]] * n,
                   old_logprobs=torch.zeros(n, 1), mask=torch.ones(n, 1, dtype=torch.bool), turn_idx=torch.zeros(n))


def test_rl_batch_extras_hold_one_entry_per_turn() -> None:
    batch = _rl_batch(3)
    batch.extras["m/ok"] = torch.zeros(3, 5)  # [N, T] is fine: one row per turn
    batch.extras.update({"m/list": [1, 2, 3]})
    batch.extras.setdefault("m/other", torch.ones(3))
    for bad in (torch.zeros(2), [1, 2], 0.5, torch.tensor(1.0)):
        with pytest.raises(ValueError, match=r"one entry per turn \(3\)"):
            batch.extras["m/bad"] = bad
    with pytest.raises(ValueError, match="one entry per trajectory"):
        batch.traj_extras["m/parts"] = [{}]  # the batch has no trajectories
    with pytest.raises(KeyError, match=r"my metrics needs per-turn extras\['m/missing'\]; present: \['m/list'"):
        batch.extras.need("m/missing", "my metrics")
    assert batch.extras.need("m/ok", "x").shape == (3, 5)


def test_extras_update_checks_every_value() -> None:
    extras = Extras(2, "turn")
    with pytest.raises(ValueError):
        extras.update(a=[1, 2], b=[1])
    assert set(extras) == {"a"}


def test_turn_batch_extras_are_checked_and_named() -> None:
    with pytest.raises(ValueError, match=r"extras\['m/x'\] must be a 1-D tensor of length 2"):
        TurnBatch.from_nested([[1.0, 2.0]], extras={"m/x": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ValueError, match=r"extras\['m/x'\] must be a 1-D tensor"):
        TurnBatch(rewards=torch.zeros(2), dones=torch.zeros(2), traj_ids=torch.zeros(2, dtype=torch.long),
                  group_ids=torch.zeros(2, dtype=torch.long), turn_idx=torch.arange(2), extras={"m/x": [0.0, 1.0]})
    batch = TurnBatch.from_nested([[1.0, 2.0]], extras={"m/x": [[True, False]]})
    assert batch.extras["m/x"].dtype == torch.bool
    with pytest.raises(KeyError, match=r"estimator 'e' needs TurnBatch extras\['m/y'\]; the batch has \['m/x'\]"):
        batch.extra("m/y", "estimator 'e'")
