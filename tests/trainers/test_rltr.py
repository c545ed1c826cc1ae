"""RLTR (``trainers.rltr``): the planner trained alone on the planner env, rewarded by completeness - its config
checks, that the trained tokens are exactly the planner's, that the reward is the env's completeness with the
format term (no outcome reward), and one CPU iteration of the registered method on the tiny model."""

from __future__ import annotations

import io
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_envs.core.protocol import parse_action
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


# ------------------------------------------------------------------ the comparison's plan language and step unit
@settings(max_examples=8, deadline=None)
@given(task_index=st.integers(0, 3552))
def test_the_located_plan_source_writes_the_oracle_planners_plan(task_index: int) -> None:
    """An AdaPlan expert's first turn with ``plan_source="located"`` declares the very plan the planner env's oracle
    writes (the milestones, each find step naming where the object is): both arms of the comparison start from one
    plan language. The default source stays the bare milestones."""
    opts = {"split": "train", "task_index": task_index}
    env = gym.make("PilotALFWorld-v0", max_episode_steps=20, plan_mode="agent")
    obs, info = env.reset(seed=0, options=opts)
    located, _ = expert_response("adaplan", obs, info, turn_idx=0, previous=None, plan_source="located")
    plain, _ = expert_response("adaplan", obs, info, turn_idx=0, previous=None)
    planner = PlannerEnv("PilotALFWorld-v0", step_cap=20)
    _, pinfo = planner.reset(seed=0, options=opts)
    assert parse_action(located).plan == parse_action(pinfo["expert_action"]).plan
    assert parse_action(plain).plan == tuple(info["subgoals"])
    assert parse_action(located).command == parse_action(plain).command  # the same first action
    obs, _, _, _, info = env.step(located)
    assert info["plan_score"] == 1.0 and all(info["plan_coverage"])  # places do not hurt the plan's match


def test_plan_source_reaches_the_sft_samples_and_is_checked() -> None:
    from trainers.core.rollout import TaskSpec
    from trainers.core.sft import PLAN_SOURCES, expert_samples

    assert set(PLAN_SOURCES) == {"milestones", "located"}
    env = gym.make("PilotALFWorld-v0", max_episode_steps=20, plan_mode="agent")
    obs, info = env.reset(seed=0, options={"split": "train", "task_index": 2})
    with pytest.raises(ValueError, match="plan_source"):
        expert_response("adaplan", obs, info, turn_idx=0, previous=None, plan_source="oracle")

    class Render:  # records the samples' targets only: a stand-in tokenizer
        class policy:
            eos_token_ids = (0,)
            tokenizer = None

            @staticmethod
            def encode(texts):
                return [[1] for _ in texts]

        class agent:
            prompt_format = "adaplan"

        def __call__(self, obs, history, carried):
            return [1]

    task = [TaskSpec(0, {"split": "train", "task_index": 2})]
    by_source = {src: expert_samples(env, task, Render(), plan_source=src, max_turns=3) for src in PLAN_SOURCES}
    first = {src: parse_action(s[0].response_text).plan for src, s in by_source.items()}
    assert first["milestones"] == tuple(info["subgoals"])
    assert any(": check " in step for step in first["located"])
    assert all("<plan>" not in s.response_text for s in by_source["located"][1:])  # later turns act on it


@pytest.mark.parametrize("plan", ["oracle", "<plan>Step 1: find a mug: check drawer 1</plan>", "garbage"])
def test_world_steps_of_a_planner_turn_are_the_wrapped_envs_steps(plan: str) -> None:
    """The comparison's step unit: a planner turn counts 1 + the follower's steps, which is exactly how many steps the
    wrapped env (its TimeLimit) played; an AdaPlan agent's turn is one such step."""
    env = PlannerEnv("PilotALFWorld-v0", step_cap=20)
    _, info = env.reset(seed=0, options={"split": "valid_unseen", "task_index": 5})
    counted, done = 0, False
    while not done:
        _, _, term, trunc, info = env.step(info["expert_action"] if plan == "oracle" else plan)
        counted += 1 + info["executor_steps"]
        done = term or trunc
    limit = env.pe.inner
    while not hasattr(limit, "_elapsed_steps"):
        limit = limit.env
    assert counted == limit._elapsed_steps and counted <= 20


def test_rltr_counts_world_steps_and_logs_completeness(tmp_path: Path) -> None:
    from trainers.core.trainer import UpdateStats
    from trainers.rltr.trainer import COMPLETENESS, WORLD_STEPS, world_steps

    trainer = RLTRTrainer(_cfg(tmp_path, sft_episodes=0))
    trajs, stats = trainer.collect(trainer.sample_tasks())
    batch = trainer.make_batch(trajs)
    batch.rewards = trainer.score(batch)
    m = trainer.metrics(batch, stats, UpdateStats())
    turns = [t for traj in trajs for t in traj.turns]
    assert m["env/planner_turns"] == len(turns) == stats.env_steps
    assert m["env/steps"] == world_steps(trajs) == sum(t.extras[WORLD_STEPS] for t in turns)
    assert all(1 <= t.extras[WORLD_STEPS] <= 20 for t in turns)
    assert m["env/completeness"] == pytest.approx(sum(t.turns[-1].extras[COMPLETENESS] for t in trajs) / len(trajs))
