"""EMPG (``trainers.empg``): the entropy-modulated advantage against hand-computed numbers, its edge cases, the
per-turn entropy the generic rollout records, and one training iteration through the registered method."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainers.core.advantages import AdvantageConfig, TurnBatch
from trainers.core.policy import Generation
from trainers.core.registry import ADVANTAGES, METHODS
from trainers.empg import EMPGConfig, EMPGTrainer
from trainers.empg.advantage import ENTROPY, EMPGAdvantageConfig


def close(actual: torch.Tensor, expected: list[float], tol: float = 1e-4) -> None:
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


def _batch(entropy: list[list[float]]) -> TurnBatch:
    # one group: trajectory A (rewards 0, 1: R = 1), trajectory B (reward 0: R = 0)
    return TurnBatch.from_nested([[0.0, 1.0], [0.0]], group_ids=[0, 0], extras={ENTROPY: entropy})


def test_empg_by_hand() -> None:
    # GRPO: R = (1, 0), mean .5, unbiased std sqrt(.5): A = (.70711, .70711, -.70711) per turn
    # H = (.2, 1.0, .6) -> Ĥ = (0, 1, .5) (min-max over the batch, eps 1e-6)
    # k = 1: exp(-Ĥ) = (1, .36788, .60653), mean .65814 -> g = (1.51944, .55897, .92159)
    # clarity: zeta exp(-k' Ĥ_{t+1}) on turn 0 only (turns 1 and 2 end their trajectories): .1 * .36788
    # A' = g A + clarity = (1.11121, .39525, -.65166), mean .28495 -> A_mod = A' - mean
    out = ADVANTAGES.get("empg")(_batch([[0.2, 1.0], [0.6]]), EMPGAdvantageConfig())
    close(out.advantages, [0.82626, 0.11032, -0.93659])
    close(out.extras["empg/g"], [1.51944, 0.55897, 0.92159])
    close(out.extras["empg/base"], [0.70711, 0.70711, -0.70711])
    close(out.extras["empg/clarity"], [0.1 * math.exp(-1.0), 0.0, 0.0])
    assert abs(float(out.advantages.sum())) < 1e-6, "zero-mean over the batch"
    assert out.stats == pytest.approx({"entropy_mean": 0.6, "entropy_min": 0.2, "entropy_max": 1.0,
                                       "g_min": 0.55897, "g_max": 1.51944}, abs=1e-4)
    # k = 2, zeta = .5: exp(-2Ĥ) = (1, .13534, .36788) -> g = (2.00393, .27121, .73721); clarity .5 e^-1 on turn 0
    sharp = ADVANTAGES.get("empg")(_batch([[0.2, 1.0], [0.6]]), EMPGAdvantageConfig(k=2.0, zeta=0.5))
    close(sharp.advantages, [1.17281, -0.23134, -0.94147])


def test_empg_reductions() -> None:
    batch = _batch([[0.3, 0.3], [0.3]])  # equal entropies: g = 1 everywhere
    grpo = ADVANTAGES.get("grpo")(batch, AdvantageConfig()).advantages
    plain = ADVANTAGES.get("empg")(batch, EMPGAdvantageConfig(zeta=0.0))
    close(plain.advantages, (grpo - grpo.mean()).tolist())
    # k = k' = 0: g = 1, clarity = zeta on every turn that has a next turn
    flat = ADVANTAGES.get("empg")(_batch([[0.1, 0.9], [0.5]]), EMPGAdvantageConfig(k=0.0, k_next=0.0, zeta=0.3))
    shifted = grpo + torch.tensor([0.3, 0.0, 0.0])
    close(flat.advantages, (shifted - shifted.mean()).tolist())
    # any registered base: RLOO's advantage modulated the same way
    rloo = ADVANTAGES.get("empg")(batch, EMPGAdvantageConfig(base="rloo", zeta=0.0))
    base = ADVANTAGES.get("rloo")(batch, AdvantageConfig()).advantages
    close(rloo.advantages, (base - base.mean()).tolist())


def test_empg_needs_its_entropy_and_checks_its_settings() -> None:
    with pytest.raises(KeyError, match=r"'empg' needs TurnBatch extras\['empg/entropy'\]"):
        ADVANTAGES.get("empg")(TurnBatch.from_nested([[1.0]]), EMPGAdvantageConfig())
    for bad in ({"base": "empg"}, {"k": -1.0}, {"zeta": float("inf")}):
        with pytest.raises(ValueError):
            EMPGAdvantageConfig(**bad)
    for bad in ({"empg_base": "empg"}, {"empg_base": "nope"}, {"empg_k_next": float("nan")}):
        with pytest.raises(ValueError):
            EMPGConfig(**bad)


def test_generation_mean_entropy() -> None:
    g = Generation([1, 2], [-0.1, -0.2], "x", True, "eos", entropies=[0.5, 1.5])
    assert g.mean_entropy == 1.0
    assert Generation([], [], "", True, "eos").mean_entropy == 0.0


def test_empg_is_a_registered_method_that_trains(tmp_path: Path) -> None:
    """One iteration end to end: the rollout's per-turn entropies reach the estimator, and they are the sampling
    distribution's (recomputed by a fresh forward of the recorded responses)."""
    assert METHODS.get("empg").build is EMPGTrainer
    cfg = EMPGConfig(output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), iterations=1,
                     tasks_per_iteration=2, group_size=2, num_envs=4, max_turns=3, max_new_tokens=8, history_window=0,
                     tiny_hidden=16, tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=4, eval_split=None,
                     progress_bar=False, tensorboard=False, save_final_model=False, transcripts_every=0, lr=1e-3)
    trainer = EMPGTrainer(cfg)
    trajs, _ = trainer.collect(trainer.sample_tasks())
    turns = [t for tr in trajs for t in tr.turns]
    out = trainer.policy.forward_logprobs([t.prompt_ids for t in turns], [t.response_ids for t in turns],
                                          with_entropy=True)
    for i, t in enumerate(turns):
        fresh = float(out.entropy[i, : len(t.response_ids)].detach().mean())
        assert t.entropy == pytest.approx(fresh, rel=1e-4, abs=1e-5)
    metrics = trainer.train()
    assert math.isfinite(metrics["losses/policy"]) and metrics["adv/entropy_max"] >= metrics["adv/entropy_min"] > 0
