"""RLTR (``trainers.rltr``): the planner trained alone on the planner env, rewarded by completeness - its config
checks, that the trained tokens are exactly the planner's, that the reward is the env's completeness with the
format term (no outcome reward), and one CPU iteration of the registered method on the tiny model."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

from pilot_envs.multiagent.planner_env import PlannerEnv
from pilot_envs.replay import env_header, replay_file
from trainers.core.logger import save_transcripts
from trainers.core.registry import FORMATS, METHODS
from trainers.core.sft import expert_response
from trainers.rltr import RLTRConfig, RLTRTrainer


def _cfg(tmp_path: Path, **kw) -> RLTRConfig:
    base = dict(output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), iterations=1,
                tasks_per_iteration=2, group_size=2, num_envs=4, max_new_tokens=24, tiny_hidden=16, tiny_layers=1,
                tiny_heads=2, tiny_corpus_episodes=8, sft_episodes=4, sft_steps=2, sft_batch_size=2, eval_tasks=2,
                progress_bar=False, tensorboard=False, save_final_model=False, transcripts_every=0, lr=1e-3)
    return RLTRConfig(**{**base, **kw})


def test_config_checks() -> None:
    for bad in ({"step_cap": 1}, {"completeness_weight": -1.0}, {"format_weight": float("nan")},
                {"plan_mode": "oracle"}, {"executor": ""}):
        with pytest.raises(ValueError):
            RLTRConfig(**bad)


def test_the_planner_format_answers_with_the_oracle_plan() -> None:
    env = PlannerEnv("PilotALFWorld-v0")
    obs, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": 1})
    answer, _ = expert_response("planner", obs, info, turn_idx=0, previous=None)  # the SFT target
    assert answer == info["expert_action"] and answer.startswith("<plan>Step 1: find ") and ": check " in answer
    assert FORMATS.get("planner").fields == ("plan",)
    _, reward, term, _, _ = env.step(answer)
    assert term and reward == pytest.approx(1.0)


def test_one_iteration_trains_only_the_planners_tokens_on_completeness(tmp_path: Path) -> None:
    assert METHODS.get("rltr").build is RLTRTrainer
    trainer = RLTRTrainer(_cfg(tmp_path))
    planner = trainer.envs[0].unwrapped
    assert isinstance(planner, PlannerEnv) and planner.pe.inner.spec.max_episode_steps == 20
    trajs, _ = trainer.collect(trainer.sample_tasks())
    # the run's transcripts name the env by id and arguments: pilot-envs replay re-runs them
    path = save_transcripts(trajs, tmp_path / "t.jsonl", env=env_header(trainer.envs[0]))
    assert replay_file(path, out=io.StringIO()) == (len(trajs), 0, 0)
    batch = trainer.make_batch(trajs)
    for traj in trajs:
        assert len(traj.turns) == 1  # one planner turn; the executor's steps happen inside it and are not trained
        turn = traj.turns[0]
        # the reward is the env's: completeness gain minus the format term, never the world's success reward
        assert -0.1 <= turn.reward <= 1.0
    weights = trainer.token_weights(batch)
    assert torch.equal(weights.bool(), batch.mask.bool())  # every planner token, nothing else
    trained = [trainer.policy.decode([i for i, w in zip(ids, row, strict=False) if w])
               for ids, row in zip(batch.response_ids, weights.tolist(), strict=True)]
    assert trained == [trainer.policy.decode(t.turns[0].response_ids) for t in trajs]
    before = {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}
    metrics = trainer.train()
    assert math.isfinite(metrics["losses/policy"]) and "eval/return" in metrics and "eval/plan_score" in metrics
    assert any(not torch.equal(p, before[n]) for n, p in trainer.policy.model.named_parameters())
