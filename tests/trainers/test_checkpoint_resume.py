"""Checkpoints: atomic writes, and ``--resume`` continues exactly as an uninterrupted run (same metrics, same
weights), for GRPO (policy + KL reference) and PPO (+ critic and its optimizer)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainers.core import checkpoint as ckpt_mod
from trainers.core.checkpoint import latest_checkpoint, save_checkpoint
from trainers.core.logger import read_metrics
from trainers.grpo import GRPOConfig, GRPOTrainer
from trainers.ppo import PPOConfig, PPOTrainer


def _cfg(cls, out: Path, cache: Path, **kw):
    base = dict(
        output_dir=str(out), model_cache_dir=str(cache), iterations=3, tasks_per_iteration=2, group_size=2,
        num_envs=4, max_turns=2, max_new_tokens=10, history_window=1, tiny_hidden=32, tiny_layers=1, tiny_heads=2,
        tiny_corpus_episodes=10, sft_episodes=2, sft_steps=2, sft_lr=1e-3, lr=1e-3, eval_split=None,
        progress_bar=False, tensorboard=False, save_final_model=False, kl_coef=0.05, mini_batches=2,
    )
    return cls(**{**base, **kw})


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def _same(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == y[k] or (isinstance(x[k], float) and math.isclose(x[k], y[k], rel_tol=1e-6, abs_tol=1e-9)), k


@pytest.mark.parametrize(("cls", "trainer_cls"), [(GRPOConfig, GRPOTrainer), (PPOConfig, PPOTrainer)])
def test_resume_equals_uninterrupted(tmp_path: Path, cls, trainer_cls) -> None:
    cache = tmp_path / "cache"
    full = trainer_cls(_cfg(cls, tmp_path / "full", cache))
    full.train()
    # interrupted after iteration 1 (its final checkpoint), then resumed with the full budget
    trainer_cls(_cfg(cls, tmp_path / "cut", cache, iterations=1)).train()
    resumed = trainer_cls(_cfg(cls, tmp_path / "cut", cache, resume=True))
    resumed.train()
    assert resumed.step == 3
    a = _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    b = _strip(read_metrics(tmp_path / "cut" / "metrics.jsonl"))
    _same(a, b)  # the resumed log reads like one run: step 0 (SFT), 1, 2, 3 exactly once, same values
    for (name, p), q in zip(full.policy.model.state_dict().items(), resumed.policy.model.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name
    if trainer_cls is PPOTrainer:
        for p, q in zip(full.critic.state_dict().values(), resumed.critic.state_dict().values(), strict=True):
            assert torch.equal(p, q)


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    cfg = _cfg(GRPOConfig, tmp_path / "run", tmp_path / "cache", iterations=1, resume=True, sft_episodes=0)
    trainer = GRPOTrainer(cfg)
    trainer.train()
    assert trainer.step == 1 and latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-000001"


def test_checkpoint_writes_are_atomic_and_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    kwargs = dict(modules={"m": model}, optimizers={"o": opt}, rng={"x": 1}, state={"a": 1}, keep=2)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002", "step-000003"]

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "save_model", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 4, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002", "step-000003"], "no partial checkpoint"
    assert latest_checkpoint(tmp_path).name == "step-000003"
