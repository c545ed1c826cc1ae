"""EPO's own numerics (``trainers.epo.entropy``): the band penalty and its gradient, the phase weight, and the
historical entropy reference, against hand-computed numbers."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.epo.entropy import EntropyHistory, epo_band_penalty, epo_phase_weight


def close(actual: torch.Tensor | float, expected: float | list, tol: float = 1e-5) -> None:
    actual = torch.as_tensor(actual, dtype=torch.float64)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


# ------------------------------------------------------------------------------------------------- EPO


def test_epo_band_penalty_by_hand_and_gradient() -> None:
    # Hbar 1, kappa (.5, 2), alpha .1; H = (.1, 1, 2.5, 3, [9 masked]):
    # relu(.5 - H) + relu(H - 2) = (.4, 0, .5, 1) -> P = .1 * 1.9 / 4 = 0.0475; outside 3/4
    # dP/dH = alpha/4 * (-1, 0, +1, +1): descent raises H below the band, lowers it above, 0 inside
    h = torch.tensor([[0.1, 1.0, 2.5, 3.0, 9.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    penalty, outside = epo_band_penalty(h, torch.ones(1, 5, dtype=torch.float64), mask, 0.5, 2.0, 0.1)
    close(penalty, 0.0475)
    close(outside, 0.75)
    penalty.backward()
    assert h.grad is not None
    close(h.grad[0], [-0.025, 0.0, 0.025, 0.025, 0.0])
    # per-row reference broadcasts over the row's tokens
    per_row, _ = epo_band_penalty(h, torch.ones(1, dtype=torch.float64), mask, 0.5, 2.0, 0.1)
    torch.testing.assert_close(per_row, penalty)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 5), min_size=1, max_size=12), st.floats(0.1, 2.0))
def test_epo_band_gradient_points_back_into_the_band(hs: list[float], ref: float) -> None:
    h = torch.tensor([hs], dtype=torch.float64, requires_grad=True)
    penalty, _ = epo_band_penalty(h, torch.full_like(h, ref), torch.ones_like(h), 0.5, 2.0, 1.0)
    penalty.backward()
    assert h.grad is not None
    for x, g in zip(hs, h.grad[0].tolist(), strict=True):
        if x < 0.5 * ref:
            assert g < 0  # gradient descent increases H
        elif x > 2.0 * ref:
            assert g > 0  # gradient descent decreases H
        else:
            assert g == 0


def test_epo_phase_weight_by_hand() -> None:
    # E = 10: e=0 -> 1; e=2.5 (p=.5) -> 1 - .2(1 - e^-1) = 0.873576; e=5 -> second half, p=0 -> .8;
    # e=7.5 (p=.5) -> .8 e^-1.5 = 0.178504; e=10 (p=1) -> .8 e^-3 = 0.039830
    expected = [1.0, 1 - 0.2 * (1 - math.exp(-1)), 0.8, 0.8 * math.exp(-1.5), 0.8 * math.exp(-3)]
    close([epo_phase_weight(e, 10) for e in (0, 2.5, 5, 7.5, 10)], expected)
    weights = [epo_phase_weight(e, 50) for e in range(51)]
    assert all(a >= b for a, b in itertools.pairwise(weights))
    with pytest.raises(ValueError):
        epo_phase_weight(0, 0)


def test_entropy_history_means_window_and_checkpoint() -> None:
    # turn_means: rows with turn 0 hold tokens (1, 2) and (3) -> 2; turn 1 holds (5, 5, 5) -> 5
    ent = torch.tensor([[1.0, 2.0, 7.0], [3.0, 7.0, 7.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    means = EntropyHistory.turn_means(ent, mask, torch.tensor([0, 0, 1]))
    assert means == pytest.approx({0: 2.0, 1: 5.0})

    hist = EntropyHistory()
    assert hist.reference(0) is None
    hist.update(means)
    hist.update({0: 4.0})
    # turn 0: (2 + 4)/2 = 3; turn 1: 5; turn 2 unseen -> fallback
    assert hist.reference(0) == pytest.approx(3.0) and hist.reference(1) == pytest.approx(5.0)
    close(hist.reference_tensor(torch.tensor([0, 1, 2]), 0.25), [3.0, 5.0, 0.25])
    close(hist.reference_tensor(torch.tensor([2, 0]), torch.tensor([7.0, 8.0])), [7.0, 3.0])

    windowed = EntropyHistory(window=2)
    for h in (1.0, 3.0, 5.0):
        windowed.update({0: h})
    assert windowed.reference(0) == pytest.approx(4.0)  # (3 + 5)/2

    for src in (hist, windowed):
        restored = EntropyHistory(window=src.window)
        restored.load_state_dict(json.loads(json.dumps(src.state_dict())))
        assert restored.reference(0) == src.reference(0) and restored.reference(1) == src.reference(1)
        restored.update({0: 9.0})
        src.update({0: 9.0})
        assert restored.reference(0) == pytest.approx(src.reference(0))
    with pytest.raises(ValueError):
        EntropyHistory(window=3).load_state_dict(windowed.state_dict())
