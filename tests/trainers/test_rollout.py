"""Batched rollouts: group sampling, typed records, logprobs, truncation, vector envs, TurnBatch, transcripts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import pilot_envs  # noqa: F401
from trainers.core.advantages import AdvantageConfig
from trainers.core.logger import save_transcripts
from trainers.core.models import resolve_model
from trainers.core.policy import Policy
from trainers.core.registry import ADVANTAGES
from trainers.core.rollout import (
    AgentSpec,
    PromptRenderer,
    RolloutCollector,
    TaskSpec,
    expand_groups,
    flat_turns,
    turn_batch,
)
from trainers.core.sft import expert_corpus
from trainers.core.tiny import tiny_corpus_from_texts
from trainers.core.tree import TreeSpec

ENV = "PilotALFWorldSmall-v0"
KW = {"reward_mode": "progress", "invalid_action_penalty": 0.1}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    corpus = expert_corpus(gym.make(ENV), [TaskSpec(i, {"split": "train"}) for i in range(20)])
    path = resolve_model("tiny", tmp_path_factory.mktemp("cache"), corpus=tiny_corpus_from_texts(corpus),
                         hidden=32, layers=1, heads=2)
    return Policy.from_pretrained(path, seed=0)


AGENT = AgentSpec(max_new_tokens=12, max_turns=3, history_window=1, temperature=1.0)


def _collect(policy: Policy, envs, tasks, seed: int = 0, agent: AgentSpec = AGENT):
    gen = torch.Generator().manual_seed(seed)
    return RolloutCollector(policy, envs, agent, generator=gen).collect(tasks)


def test_groups_share_a_task_and_records_are_consistent(policy: Policy) -> None:
    tasks = expand_groups([TaskSpec(11, {"split": "train"}), TaskSpec(12, {"split": "train"})], 3)
    assert [t.group_id for t in tasks] == [0, 0, 0, 1, 1, 1]
    envs = [gym.make(ENV, **KW) for _ in range(4)]  # fewer envs than rollouts: two waves
    trajs, stats = _collect(policy, envs, tasks)
    assert len(trajs) == 6 and len({t.traj_id for t in trajs}) == 6
    assert len({t.task_id for t in trajs[:3]}) == 1 and len({t.task_id for t in trajs[3:]}) == 1
    assert trajs[0].task_id != trajs[3].task_id
    assert stats.env_steps == sum(len(t) for t in trajs) and stats.generated_tokens > 0
    for traj in trajs:
        assert 1 <= len(traj) <= AGENT.max_turns
        assert traj.terminated or traj.truncated
        assert (traj.next_prompt_ids is None) == traj.terminated
        for k, turn in enumerate(traj.turns):
            assert turn.turn_idx == k and turn.traj_id == traj.traj_id and turn.group_id == traj.group_id
            assert len(turn.response_ids) == len(turn.old_logprobs) == len(turn.response_mask) > 0
            assert turn.full_mask() == [0] * len(turn.prompt_ids) + [1] * len(turn.response_ids)
            assert turn.observation in policy.decode(turn.prompt_ids)
            assert turn.done == (traj.terminated and k == len(traj) - 1)
            assert isinstance(turn.state_hash, str) and turn.state_hash
        # the first turn acted in the reset state; the state changes only with valid actions
        for prev, nxt in zip(traj.turns, traj.turns[1:], strict=False):
            assert (nxt.state_hash == prev.state_hash) or prev.action_valid
    # identical tasks start identically: same first prompt inside a group
    assert trajs[0].turns[0].prompt_ids == trajs[1].turns[0].prompt_ids == trajs[2].turns[0].prompt_ids


def test_old_logprobs_match_a_fresh_forward(policy: Policy) -> None:
    trajs, _ = _collect(policy, [gym.make(ENV, **KW) for _ in range(2)], [TaskSpec(3, {"split": "train"})] * 2)
    turns = flat_turns(trajs)
    out = policy.forward_logprobs([t.prompt_ids for t in turns], [t.response_ids for t in turns])
    for i, t in enumerate(turns):
        got = out.logprobs[i, : len(t.response_ids)]
        assert torch.allclose(got, torch.tensor(t.old_logprobs), atol=1e-4)


def test_same_seed_same_rollouts_and_vector_env_equals_list(policy: Policy) -> None:
    tasks = expand_groups([TaskSpec(5, {"split": "train"}), TaskSpec(6, {"split": "train"})], 2)
    a, _ = _collect(policy, [gym.make(ENV, **KW) for _ in range(4)], tasks, seed=3)
    b, _ = _collect(policy, [gym.make(ENV, **KW) for _ in range(4)], tasks, seed=3)
    vec = gym.make_vec(ENV, num_envs=4, vectorization_mode="sync", **KW)
    c, _ = _collect(policy, vec, tasks, seed=3)
    for x, y, z in zip(a, b, c, strict=True):
        assert [t.response_ids for t in x.turns] == [t.response_ids for t in y.turns] == [t.response_ids for t in z.turns]
        assert [t.reward for t in x.turns] == [t.reward for t in z.turns]
        assert [t.state_hash for t in x.turns] == [t.state_hash for t in z.turns]
        assert (x.won, x.task_id) == (z.won, z.task_id)
    with pytest.raises(ValueError, match="one options dict"):
        _collect(policy, vec, [TaskSpec(0, {"split": "train", "task_index": i}) for i in range(2)])


def test_turn_batch_feeds_the_registered_estimators(policy: Policy) -> None:
    tasks = expand_groups([TaskSpec(8, {"split": "train"})], 4)
    trajs, _ = _collect(policy, [gym.make(ENV, **KW) for _ in range(4)], tasks, seed=1)
    batch = turn_batch(trajs)
    n = sum(len(t) for t in trajs)
    assert batch.num_turns == n and batch.state_keys is not None and len(batch.state_keys) == n
    assert torch.equal(batch.rewards, torch.tensor([t.reward for t in flat_turns(trajs)]))
    adv = ADVANTAGES.get("grpo")(batch, AdvantageConfig()).advantages
    returns = torch.tensor([t.total_reward for t in trajs])
    expected = (returns - returns.mean()) / (returns.std() + 1e-6)
    per_traj = torch.repeat_interleave(expected, torch.tensor([len(t) for t in trajs]))
    assert torch.allclose(adv, per_traj, atol=1e-5)
    ADVANTAGES.get("gigpo")(batch, AdvantageConfig())  # state keys present: GiGPO runs on rollouts


def test_prompts_respect_the_budget_and_task_reminder(policy: Policy) -> None:
    env = gym.make(ENV)
    obs, _ = env.reset(seed=0, options={"split": "train"})
    history = [(obs["text"], "look")] * 5
    short = PromptRenderer(policy, AgentSpec(max_prompt_tokens=120, history_window=5))(obs, history, None)
    assert len(short) <= 120
    text = PromptRenderer(policy, AgentSpec(task_reminder=True, instruction="Answer now."))
    rendered = text.text(obs, [], None)
    assert rendered.rstrip().endswith(f"Your task is to: {obs['task']}" + "</s>\n<|assistant|>")
    assert "Answer now." in rendered and "step-by-step" not in rendered


def test_transcripts_are_jsonl_written_atomically(policy: Policy, tmp_path: Path) -> None:
    trajs, _ = _collect(policy, [gym.make(ENV, **KW)], [TaskSpec(2, {"split": "train"})])
    path = save_transcripts(trajs, tmp_path / "t" / "x.jsonl", policy.tokenizer)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    assert len(lines) == 1 and rec["task_id"] == trajs[0].task_id and len(rec["turns"]) == len(trajs[0])
    assert rec["turns"][0]["response"] == trajs[0].turns[0].response_text and "prompt" in rec["turns"][0]
    assert [p.name for p in path.parent.iterdir()] == ["x.jsonl"]


def test_split_tasks_and_evaluation_with_several_samples_per_task(policy: Policy) -> None:
    from trainers.core.evaluation import evaluate_policy, split_tasks

    env = gym.make(ENV, **KW)
    once = split_tasks(env, "valid_unseen", limit=4, seed=10)
    thrice = split_tasks(env, "valid_unseen", limit=4, seed=10, samples=3)
    assert [t.options["task_index"] for t in once] == [0, 1, 2, 3]
    assert [t.options["task_index"] for t in thrice] == [0, 1, 2, 3] * 3
    assert thrice[:4] == once, "the first sample is the one-sample evaluation"
    assert len({t.seed for t in thrice}) == len({t.group_id for t in thrice}) == 12
    for bad in (dict(samples=0), dict(split="nope")):
        with pytest.raises(ValueError):
            split_tasks(env, **{"split": "valid_unseen", **bad})
    envs = [gym.make(ENV, **KW) for _ in range(4)]
    report, trajs = evaluate_policy(policy, envs, AGENT, thrice, split="valid_unseen")
    assert len(trajs) == len(report.episodes) == 12
    assert report.by_type()["all"]["n"] == 12
    assert {t.task_id for t in trajs} == {t.task_id for t in trajs[:4]}, "three episodes of each of 4 tasks"


def test_trainer_transcripts_replay_identically(policy: Policy, tmp_path: Path) -> None:
    from pilot_envs.replay import env_header, replay_file

    env = gym.make(ENV, **KW)
    trajs, _ = _collect(policy, [env], [TaskSpec(s, {"split": "train", "task_index": s}) for s in range(3)])
    path = save_transcripts(trajs, tmp_path / "iter.jsonl", policy.tokenizer, env=env_header(env))
    log = io.StringIO()
    assert replay_file(path, out=log) == (3, 0, 0)
    record = json.loads(path.read_text().splitlines()[1])
    record["turns"][-1]["reward"] += 1.0
    (tmp_path / "bad.jsonl").write_text(json.dumps(record) + "\n")
    assert replay_file(tmp_path / "bad.jsonl", out=log) == (0, 1, 0)
    assert f"turn {len(record['turns'])}: reward expected" in log.getvalue()


# ------------------------------------------------------------------------------------------- tree rollouts
TREE_AGENT = AgentSpec(max_new_tokens=12, max_turns=6, history_window=1, temperature=1.0)


def test_tree_rollouts_branch_from_exact_snapshots(policy: Policy) -> None:
    tasks = expand_groups([TaskSpec(5, {"split": "train"}), TaskSpec(6, {"split": "train"})], 4)
    envs = [gym.make(ENV, **KW) for _ in range(8)]
    gen = torch.Generator().manual_seed(0)
    tree = TreeSpec(turns=(1, 3), width=2)
    trajs, stats = RolloutCollector(policy, envs, TREE_AGENT, generator=gen, tree=tree).collect(tasks)
    assert len(trajs) == 8 and len({t.traj_id for t in trajs}) == 8
    for group in (trajs[:4], trajs[4:]):
        # one root: every episode starts with the same first turn; two branches after turn 1, four after turn 3
        assert len({(t.turns[0].response_text, t.turns[0].state_hash) for t in group}) == 1
        for a in group:
            assert all(turn.traj_id == a.traj_id for turn in a.turns)
        # the branches' turns at a branch point act in one exact state (a step group by construction)
        assert len({t.turns[1].state_hash for t in group if len(t.turns) > 1}) == 1
        assert len({t.turns[3].state_hash for t in group[:2] if len(t.turns) > 3}) <= 1
    played = sum(len(t) for t in trajs)
    shared = sum(min(len(t), 1) for t in trajs) - 2 + sum(min(len(t), 3) - min(len(t), 1) for t in trajs) // 2
    assert stats.env_steps < played and stats.env_steps == played - shared


def test_tree_rollouts_on_a_non_dividing_group_or_a_vector_env_are_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        from trainers.core.tree import roots_per_group

        roots_per_group(TreeSpec(turns=(1, 2), width=2), 6)
    vec = gym.make_vec(ENV, num_envs=2, vectorization_mode="sync")
    with pytest.raises(ValueError, match="list of envs"):
        RolloutCollector(policy, vec, TREE_AGENT, tree=TreeSpec(turns=(1,)))
    with pytest.raises(ValueError, match="at least the group size"):
        RolloutCollector(policy, [gym.make(ENV)], TREE_AGENT, tree=TreeSpec(turns=(1,))).collect(
            expand_groups([TaskSpec(1, {"split": "train"})], 2))


def test_tree_settings_are_checked_with_the_config() -> None:
    from trainers.grpo import GRPOConfig

    with pytest.raises(ValueError, match="tree_turns must be < max_turns"):
        GRPOConfig(model="tiny", max_turns=5, tree_turns=(2, 5), tree_width=2, group_size=4)
    with pytest.raises(ValueError, match="multiple of"):
        GRPOConfig(model="tiny", tree_turns=(2,), tree_width=3, group_size=8)
    with pytest.raises(ValueError, match="num_envs"):
        GRPOConfig(model="tiny", tree_turns=(2,), tree_width=2, group_size=8, num_envs=4)
    assert GRPOConfig(model="tiny", tree_turns=(2, 5, 8), tree_width=2, group_size=8).tree_turns == (2, 5, 8)


def _methods_with_turns() -> list[str]:
    from trainers.core.registry import METHODS, discover

    discover()
    return [n for n in METHODS.names() if METHODS.get(n).config().max_turns > 2]


@pytest.mark.parametrize("name", _methods_with_turns())
def test_every_method_trains_on_tree_rollouts(name: str, tmp_path: Path) -> None:
    """One iteration of each registered method (that plays several turns) with tree rollouts on the tiny model."""
    import dataclasses

    from trainers.core.registry import METHODS

    config_cls = METHODS.get(name).config
    extra = {"overlong_buffer": 4} if "overlong_buffer" in {f.name for f in dataclasses.fields(config_cls)} else {}
    cfg = config_cls(
        **extra, model="tiny", tiny_hidden=16, tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=20, sft_episodes=0,
        env=ENV, iterations=1, tasks_per_iteration=1, group_size=4, num_envs=4, max_turns=4, max_new_tokens=8,
        eval_split=None, tree_turns=(1, 2), tree_width=2, output_dir=str(tmp_path / name), save_final_model=False,
        tensorboard=False, progress_bar=False, transcripts_every=0)
    trainer = METHODS.get(name).build(cfg)
    trajs, stats = trainer.collect(trainer.sample_tasks())
    assert len(trajs) == 4 and stats.env_steps < sum(len(t) for t in trajs)  # shared prefixes were played once
    assert len({(t.turns[0].state_hash, t.turns[0].response_text) for t in trajs}) == 1
    trainer.train()
