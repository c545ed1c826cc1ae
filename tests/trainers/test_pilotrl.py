"""PilotRL: each stage's reward on hand-made trajectories, the judge interface, which tokens each stage trains
(gradients exactly zero elsewhere), stage 2's planner + frozen executor, and a short run of all three stages."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import pilot_envs  # noqa: F401
from pilot_envs.core.task import Subgoal, plan_coverage
from trainers.core.checkpoint import latest_checkpoint
from trainers.core.cli import config_from_args, config_table, field_docs, main
from trainers.core.logger import read_metrics
from trainers.core.policy import Generation, Policy
from trainers.core.rollout import AgentSpec, PromptRenderer, TaskSpec, Trajectory, Turn
from trainers.core.sft import expert_samples
from trainers.core.tagmask import tag_token_masks
from trainers.core.trainer import RLBatch
from trainers.pilotrl import PilotRLConfig, PilotRLTrainer, env_judge, load_judge
from trainers.pilotrl.collect import PLANNER_STOPS, PilotCollector, PlannerExecutor
from trainers.pilotrl.judge import safe_score
from trainers.pilotrl.rewards import (
    RewardWeights,
    adaplan_format_ok,
    plan_completeness,
    plan_quality,
    trajectory_reward,
)
from trainers.pilotrl.trainer import SFTPlanModes, reward_term_metrics, set_plan_mode, stage_token_weights

OK0 = "<plan>Step 1: find a mug Step 2: take the mug</plan><think>find a mug</think><action>go to shelf 1</action>"
OK1 = "<think>take the mug</think><action>take mug 1 from shelf 1</action>"
BAD = "<think>take the mug<action>take mug 1 from shelf 1</action>"


def turn(k: int, text: str, *, reward: float = 0.0, shown=(), plan=(), plan_step: int = 0, plan_score: float = 0.0,
         n_tokens: int = 4, policy_tokens: int | None = None, won: bool = False, coverage=(), done=()) -> Turn:
    extras = {"task": "put a mug in shelf", "plan_shown": tuple(shown), "plan": tuple(plan),
              "declared": text.startswith("<plan>"), "num_subgoals": 4, "coverage": tuple(coverage),
              "done": tuple(done)}
    if policy_tokens is not None:
        extras["policy_tokens"] = policy_tokens
    return Turn(prompt_ids=[1], response_ids=[7] * n_tokens, response_mask=[1] * n_tokens, old_logprobs=[0.0] * n_tokens,
                reward=reward, done=won, truncated=False, turn_idx=k, traj_id=0, group_id=0, response_text=text,
                observation="obs", command="", state_hash="h", progress=0.0, plan_score=plan_score, plan_step=plan_step,
                action_valid=True, format_ok=True, won=won, finished=True, extras=extras)


def traj(*turns: Turn) -> Trajectory:
    return Trajectory(0, 0, TaskSpec(0), list(turns), won=turns[-1].won)


ORACLE = ("Find a mug", "Take the mug", "Go to the shelf", "Put the mug in the shelf")
PLAN_A = ("find a mug", "take the mug")
PLAN_B = ("find a mug", "take the mug", "go to the shelf", "put the mug in the shelf")
W = RewardWeights(outcome=1.0, follow=2.0, plan=3.0, format=0.5, overlong=1.0)


# ------------------------------------------------------------------------------------------------- rewards
def test_format_check() -> None:
    assert adaplan_format_ok(OK0, needs_plan=True) and adaplan_format_ok(OK1, needs_plan=False)
    assert not adaplan_format_ok(OK1, needs_plan=True)  # the first turn must write a plan
    assert not adaplan_format_ok(BAD, needs_plan=False)  # unclosed think
    assert not adaplan_format_ok("<action>look</action>", needs_plan=False)  # no think
    assert not adaplan_format_ok("look", needs_plan=False) and not adaplan_format_ok("", needs_plan=False)
    assert not adaplan_format_ok("<plan>Step 1: x</plan><think>a</think>", needs_plan=True)  # no action


def test_stage1_reward_is_outcome_plus_following_plus_format() -> None:
    t = traj(turn(0, OK1, reward=-0.1, shown=ORACLE, plan=ORACLE, plan_step=0),
             turn(1, BAD, reward=0.25, shown=ORACLE, plan=ORACLE, plan_step=1),
             turn(2, OK1, reward=0.5, shown=ORACLE, plan=ORACLE, plan_step=3, plan_score=0.9))
    rewards, parts = trajectory_reward(t, 1, W, max_len=64, overlong_buffer=0)
    assert parts["follow"] == pytest.approx(3 / 4) and parts["format"] == pytest.approx(2 / 3)
    assert parts["outcome"] == pytest.approx(0.65) and "plan" not in parts
    assert rewards == pytest.approx([-0.1, 0.25, 0.5 + 2.0 * 0.75 + 0.5 * 2 / 3])
    # plan score (and its weight) plays no part in stage 1
    same, _ = trajectory_reward(t, 1, RewardWeights(1.0, 2.0, 100.0, 0.5, 1.0), max_len=64, overlong_buffer=0)
    assert same == pytest.approx(rewards)


def test_stage2_and_3_reward_is_outcome_plus_mean_plan_score_plus_format() -> None:
    t = traj(turn(0, OK0, reward=0.25, plan=PLAN_A, plan_score=0.5, plan_step=1),
             turn(1, OK1, reward=0.25, shown=PLAN_A, plan=PLAN_A, plan_score=0.5, plan_step=2),
             turn(2, "<plan>" + OK0[6:], reward=0.25, shown=PLAN_A, plan=PLAN_B, plan_score=1.0, plan_step=2),
             turn(3, OK1, reward=10.25, shown=PLAN_B, plan=PLAN_B, plan_score=1.0, plan_step=4, won=True))
    for stage in (2, 3):
        rewards, parts = trajectory_reward(t, stage, W, max_len=64, overlong_buffer=0)
        assert parts["plan"] == pytest.approx((0.5 + 0.5 + 1.0 + 1.0) / 4) and "follow" not in parts
        assert parts["format"] == 1.0 and parts["outcome"] == pytest.approx(11.0)
        assert rewards == pytest.approx([0.25, 0.25, 0.25, 10.25 + 3.0 * 0.75 + 0.5])
    # a first turn without a plan: malformed, and no plan score until one is declared
    u = traj(turn(0, OK1, reward=0.0), turn(1, OK0, shown=(), plan=PLAN_A, plan_score=0.5))
    _, parts = trajectory_reward(u, 2, W, max_len=64, overlong_buffer=0)
    assert parts["format"] == pytest.approx(0.5) and parts["plan"] == pytest.approx(0.25)


MUG = [Subgoal("find a mug", "find", ("mug",)), Subgoal("take the mug", "take", ("mug",)),
       Subgoal("go to the shelf", "go", ("shelf",)), Subgoal("put the mug in the shelf", "put", ("mug", "shelf"))]


@pytest.mark.parametrize(("plan", "reached", "expected"), [
    (PLAN_B, 4, 1.0),  # complete, in order, and the executor reached every milestone
    (PLAN_B, 2, (4 + 2) / 8),  # complete plan, the executor stopped after taking the mug
    (PLAN_A, 2, (2 + 2) / 8),  # a plan missing the last two steps
    (("take the mug", "find a mug", "put the mug in the shelf", "go to the shelf"), 0, 2 / 8),  # wrong order
    (("look around", *PLAN_B, "dance"), 1, (4 + 1) / 8),  # extra steps cost nothing
    ((), 0, 0.0),  # no plan
    (("<<<", "Step: ???"), 1, 1 / 8),  # garbage: covers nothing; the executor still found the mug
])
def test_stage2_completeness_reward_on_hand_written_plans(plan, reached, expected) -> None:
    """``plan_reward="completeness"``: the plan term is (covered + reached) / 2K after the last turn; coverage is the
    env's (``plan_coverage`` of the plan in effect), reached the milestones whoever acted reached."""
    coverage = plan_coverage(plan, MUG)
    done = (True,) * reached + (False,) * (4 - reached)
    t = traj(turn(0, OK0, reward=0.25, plan=plan, plan_score=0.5, coverage=coverage, done=done[:1] + (False,) * 3),
             turn(1, OK1, reward=0.5, shown=plan, plan=plan, plan_score=0.5, coverage=coverage, done=done))
    assert plan_completeness(t) == pytest.approx(expected)
    for stage in (2, 3):
        rewards, parts = trajectory_reward(t, stage, W, max_len=64, overlong_buffer=0, plan_reward="completeness")
        assert parts["plan"] == pytest.approx(expected)
        assert rewards[-1] == pytest.approx(0.5 + W.plan * expected + W.format * parts["format"])
    _, parts = trajectory_reward(t, 2, W, max_len=64, overlong_buffer=0)  # the default stays the plan score
    assert parts["plan"] == pytest.approx(0.5 if plan else 0.0)
    _, parts = trajectory_reward(t, 1, W, max_len=64, overlong_buffer=0, plan_reward="completeness")
    assert "plan" not in parts  # stage 1 has no plan term
    with pytest.raises(ValueError, match="plan_reward"):
        trajectory_reward(t, 2, W, max_len=64, overlong_buffer=0, plan_reward="judge")


def test_the_collector_records_coverage_and_reached_milestones() -> None:
    """On the real env: a turn's COVERAGE/DONE are the env's plan coverage and reached milestones after the step."""
    env = gym.make("PilotALFWorld-v0", max_episode_steps=20, plan_mode="agent")
    _, info = env.reset(seed=0, options={"split": "train", "task_index": 5})
    collector = PilotCollector.__new__(PilotCollector)
    head = "<plan>Step 1: " + info["subgoals"][0] + "</plan><think>x</think><action>" + info["expert_action"] + "</action>"
    result = env.step(head)
    gen = Generation(response_ids=[1, 2], logprobs=[0.0, 0.0], text=head, finished=True, stop_reason="stop",
                     entropies=[0.0, 0.0])
    _, extras = collector.turn_extras({"task": "t", "plan": ()}, gen, result)
    assert extras["coverage"] == tuple(bool(c) for c in result[4]["plan_coverage"]) == (True,) + (False,) * 3
    assert extras["done"] == tuple(bool(d) for d in result[4]["subgoals_done"])


def test_judge_is_called_once_per_declared_plan_and_clipped() -> None:
    calls = []

    def judge(task, plan, info):
        calls.append((task, tuple(plan), info["turn_idx"]))
        return 7.0 if len(plan) == 4 else float("nan")

    t = traj(turn(0, OK0, plan=PLAN_A), turn(1, OK1, shown=PLAN_A, plan=PLAN_A),
             turn(2, OK0, shown=PLAN_A, plan=PLAN_B), turn(3, OK1, shown=PLAN_B, plan=PLAN_B))
    assert plan_quality(t, judge) == pytest.approx((0 + 0 + 1 + 1) / 4)  # NaN -> 0, 7 -> 1
    assert calls == [("put a mug in shelf", PLAN_A, 0), ("put a mug in shelf", PLAN_B, 2)]
    assert load_judge("env") is env_judge and load_judge(judge) is judge
    assert load_judge("trainers.pilotrl.judge:env_judge") is env_judge
    assert env_judge("t", (), {"plan_score": 0.9}) == 0.0 and env_judge("t", ("a",), {"plan_score": 0.9}) == 0.9
    assert (safe_score("x"), safe_score(-1), safe_score(0.3)) == (0.0, 0.0, 0.3)
    with pytest.raises(ValueError, match="module:function"):
        load_judge("no_colon")
    with pytest.raises(AttributeError):
        load_judge("trainers.pilotrl.judge:missing")


def test_overlong_penalty_counts_the_policy_tokens() -> None:
    t = traj(turn(0, OK0, n_tokens=16, plan=PLAN_A), turn(1, OK1, n_tokens=20, shown=PLAN_A, plan=PLAN_A),
             turn(2, OK1, n_tokens=20, policy_tokens=10, shown=PLAN_A, plan=PLAN_A))
    rewards, parts = trajectory_reward(t, 3, RewardWeights(1, 0, 0, 0, 2.0), max_len=20, overlong_buffer=8)
    # p(L) = min(-(L - (20 - 8)) / 8, 0): 16 -> -0.5, 20 -> -1, 10 (the planner's part only) -> 0
    assert parts["overlong"] == pytest.approx(-1.5) and rewards == pytest.approx([-1.0, -2.0, 0.0])
    with pytest.raises(ValueError, match="stage"):
        trajectory_reward(t, 4, W, max_len=20, overlong_buffer=8)


def test_reward_term_metrics_measure_each_terms_share_of_the_group_signal() -> None:
    parts = [{"outcome": 0.0, "plan": 0.2, "format": 1.0, "overlong": 0.0},
             {"outcome": 2.0, "plan": 0.6, "format": 1.0, "overlong": 0.0},
             {"outcome": 1.0, "plan": 0.4, "format": 0.5, "overlong": -1.0},
             {"outcome": 1.0, "plan": 0.4, "format": 0.5, "overlong": -1.0}]
    m = reward_term_metrics(parts, [0, 0, 1, 1], RewardWeights(outcome=1.0, plan=3.0))
    assert m["reward/outcome"] == pytest.approx(1.0) and m["reward/plan"] == pytest.approx(0.4)
    # group 0: std of (0, 2) = sqrt(2); group 1: 0 -> mean sqrt(2)/2; plan weighted by 3: std of (0.6, 1.8)
    assert m["reward/group_std/outcome"] == pytest.approx(2**0.5 / 2)
    assert m["reward/group_std/plan"] == pytest.approx(1.2 / 2**0.5 / 2)
    assert m["reward/group_std/format"] == 0.0 and math.isnan(m["reward/follow"])
    assert m["reward/corr_plan_outcome"] == pytest.approx(1.0) and math.isnan(m["reward/corr_follow_outcome"])


# ------------------------------------------------------------------------------------------------ config / CLI
def test_config_fields_stages_and_cli() -> None:
    cfg = PilotRLConfig(stage1_iterations=2, stage2_iterations=0, stage3_iterations=3, iterations=99)
    assert cfg.iterations == 5 and cfg.stage_bounds() == (2, 2, 5)
    assert [cfg.stage_at(s) for s in range(5)] == [1, 1, 3, 3, 3]
    assert (cfg.prompt_format, cfg.kl_coef, cfg.group_size, cfg.clip_lo, cfg.clip_hi) == ("adaplan", 0.0, 16, 0.2, 0.2)
    for bad in (dict(stage1_iterations=-1), dict(stage1_iterations=0, stage2_iterations=0, stage3_iterations=0),
                dict(plan_mode="oracle"), dict(group_size=1), dict(plan_weight=-1.0),
                dict(max_new_tokens=32, overlong_buffer=32), dict(plan_reward="judge"),
                dict(sft_plan_source="oracle")):
        with pytest.raises(ValueError):
            PilotRLConfig(**bad)
    docs = field_docs(PilotRLConfig)
    assert all(docs.get(f.name) for f in dataclasses.fields(PilotRLConfig))
    assert "| `stage2_iterations` |" in config_table(PilotRLConfig)
    parsed = config_from_args(PilotRLConfig, ["--stage1-iterations", "4", "--judge", "trainers.pilotrl.judge:env_judge",
                                              "--no-frozen-executor", "--plan-weight", "2.5"])
    assert (parsed.iterations, parsed.frozen_executor, parsed.plan_weight) == (34, False, 2.5)
    with pytest.raises(SystemExit) as err:
        main(["pilotrl", "--stage3-iterations", "1", "--print-config"])
    assert err.value.code == 0


# ------------------------------------------------------------------------------------- end to end + masks
class Recording(PilotRLTrainer):
    """Snapshots the policy at the end of stage 1 and the executor after every iteration."""

    def on_step_end(self, batch, metrics):
        super().on_step_end(batch, metrics)
        self.traj_ids = [*getattr(self, "traj_ids", []), *(t.traj_id for t in batch.trajectories)]
        sd = {k: v.detach().clone() for k, v in self.policy.model.state_dict().items()}
        self.snapshots = getattr(self, "snapshots", {})
        self.snapshots[self.step + 1] = sd
        if self.executor is not None:
            self.executor_snapshots = getattr(self, "executor_snapshots", {})
            self.executor_snapshots[self.step + 1] = {k: v.clone() for k, v in self.executor.model.state_dict().items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    tmp = tmp_path_factory.mktemp("pilotrl")
    cfg = PilotRLConfig(
        output_dir=str(tmp / "run"), model_cache_dir=str(tmp / "cache"), stage1_iterations=1, stage2_iterations=1,
        stage3_iterations=1, tasks_per_iteration=2, group_size=2, num_envs=4, max_turns=3, max_new_tokens=16,
        history_window=1, tiny_hidden=32, tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=20, sft_episodes=4,
        sft_steps=2, sft_lr=1e-3, lr=1e-3, eval_tasks=4, eval_max_turns=3, transcripts_every=1, progress_bar=False,
        tensorboard=False, overlong_buffer=4,
        entropy_coef=0.01,  # a gradient even when a group's returns tie (stages 2 and 3 must move the policy)
    )
    trainer = Recording(cfg)
    trainer.train()
    return trainer


def test_three_stages_run_end_to_end(trained: Recording) -> None:
    run = Path(trained.config.output_dir)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert [r["pilotrl/stage"] for r in rows[1:]] == [1.0, 2.0, 3.0]
    s1, s2, s3 = rows[1:]
    assert s1["pilotrl/trained_plan_tokens"] == 0 and s2["pilotrl/trained_other_tokens"] == 0
    assert s3["pilotrl/trained_other_tokens"] > 0
    assert s1["reward/follow"] is not None and s1["reward/plan"] is None
    assert s2["reward/plan"] is not None and s2["reward/follow"] is None and s3["reward/follow"] is None
    assert all("eval/success_rate" in r for r in rows)  # after SFT, after each stage
    assert set(trained.stage_reports()) == {"sft", "stage1", "stage2", "stage3"}
    assert len(set(trained.traj_ids)) == len(trained.traj_ids) == 3 * 2 * 2  # one id sequence over the stages
    assert "plan_score" in trained.stage_reports()["stage3"]["all"]
    # the executor is the policy as it was at the end of stage 1, and stays frozen
    assert trained.executor_frozen_at == 1
    for step in (2, 3):
        for k, v in trained.executor_snapshots[step].items():
            assert torch.equal(v, trained.snapshots[1][k]), k
    assert any(not torch.equal(v, trained.snapshots[1][k]) for k, v in trained.policy.model.state_dict().items())
    ckpt = latest_checkpoint(run / "checkpoints")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["trainer"]["executor_frozen_at"] == 1 and trained.stage_at(state["step"] - 1) == 3
    assert (ckpt / "executor.safetensors").exists()
    transcripts = (run / "transcripts" / "iter-000001.jsonl").read_text().splitlines()
    assert transcripts and all(json.loads(x)["turns"] for x in transcripts)


def _batch(trainer: PilotRLTrainer, text: str, planner_tokens: int | None = None) -> RLBatch:
    pol = trainer.policy
    prompt = pol.encode([pol.apply_chat_template([{"role": "user", "content": "put a mug in shelf"}])])[0]
    resp = pol.encode([text])[0] + sorted(pol.eos_token_ids)[:1]
    mask = [1] * len(resp) if planner_tokens is None else [1] * planner_tokens + [0] * (len(resp) - planner_tokens)
    with torch.no_grad():
        old = pol.forward_logprobs([prompt], [resp]).logprobs[0].tolist()
    t = turn(0, text, n_tokens=len(resp))
    t.prompt_ids, t.response_ids, t.response_mask, t.old_logprobs = prompt, resp, mask, old
    return RLBatch(trajectories=[traj(t)], turns=[t], prompt_ids=[prompt], response_ids=[resp],
                   old_logprobs=torch.tensor([old]), mask=torch.tensor([mask]).bool(), turn_idx=torch.tensor([0]))


def _grad_per_token(trainer: PilotRLTrainer, batch: RLBatch, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
    saved = trainer.step
    trainer.step = trainer.config.stage_bounds()[stage - 1] - 1  # the last iteration of that stage
    try:
        assert trainer.stage == stage
        batch.weights = trainer.loss_weights(batch)
        batch.advantages = torch.ones_like(batch.weights) * batch.mask
        out = trainer.policy.forward_logprobs(batch.prompt_ids, batch.response_ids, with_entropy=True)
        out.logprobs.retain_grad()
        trainer.policy.model.zero_grad(set_to_none=True)
        terms, _ = trainer.loss_terms(batch, [0], out)
        sum(terms.values()).backward()
    finally:
        trainer.step = saved
    return batch.weights[0], out.logprobs.grad[0]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_only_the_stage_tokens_get_gradients(trained: Recording, stage: int) -> None:
    pol = trained.policy
    batch = _batch(trained, OK0)
    resp = batch.response_ids[0]
    plan = tag_token_masks(pol.tokenizer, resp, ("plan",))["plan"]
    expect = {1: ~plan, 2: plan, 3: torch.ones_like(plan)}[stage]
    weights, grad = _grad_per_token(trained, batch, stage)
    assert torch.equal(weights > 0, expect)
    assert torch.all(grad[~expect] == 0) and torch.all(grad[expect] != 0)
    trained_text = pol.decode([t for t, m in zip(resp, expect.tolist(), strict=True) if m], skip_special_tokens=False)
    if stage == 2:
        assert trained_text == OK0[: OK0.index("</plan>") + len("</plan>")]
    if stage == 1:
        assert trained_text.startswith("<think>") and "<plan>" not in trained_text and "Step" not in trained_text
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pol.parameters())


def test_stage2_trains_only_the_planners_plan_tokens(trained: Recording) -> None:
    pol = trained.policy
    head = OK0[: OK0.index("</plan>") + len("</plan>")]
    n_head = len(pol.encode([head])[0])
    text = head + "<think>x</think><plan>Step 1: look</plan><action>look</action>"  # the executor wrote a plan too
    batch = _batch(trained, text, planner_tokens=n_head)
    weights, grad = _grad_per_token(trained, batch, 2)
    assert torch.equal(weights > 0, torch.arange(len(weights)) < n_head)
    assert torch.all(grad[n_head:] == 0) and torch.all(grad[:n_head] != 0)
    # the same masks as a pure function
    mask, plan = torch.tensor([[1, 1, 1, 0, 0]]), torch.tensor([[True, False, True, True, False]])
    assert stage_token_weights(1, mask, plan).tolist() == [[0, 1, 0, 0, 0]]
    assert stage_token_weights(2, mask, plan).tolist() == [[1, 0, 1, 0, 0]]
    assert stage_token_weights(3, mask, plan).tolist() == [[1, 1, 1, 0, 0]]


# --------------------------------------------------------------------------------- planner + frozen executor
class Scripted:
    """A policy stand-in that answers every prompt with a fixed text (its tokens, logprob -1 each)."""

    def __init__(self, policy: Policy, text: str, reason: str = "stop") -> None:
        self.policy, self.text, self.reason, self.calls = policy, text, reason, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, prompt_ids, *, max_new_tokens, temperature, top_p, generator=None, seed=None, stop_strings=None):
        self.calls.append(([list(p) for p in prompt_ids], stop_strings))
        ids = self.policy.encode([self.text])[0] + (sorted(self.policy.eos_token_ids)[:1] if self.reason == "eos" else [])
        return [Generation(list(ids), [-1.0] * len(ids), self.policy.decode(ids), True, self.reason) for _ in prompt_ids]


def test_planner_writes_the_plan_and_the_frozen_executor_acts(trained: Recording) -> None:
    pol = trained.policy
    head = "<plan>Step 1: find a mug Step 2: take the mug</plan>"
    planner, executor = Scripted(pol, head), Scripted(pol, "<think>find a mug</think><action>look</action>", "eos")
    both = PlannerExecutor(planner, executor)  # type: ignore[arg-type]
    gens = both.generate([[5, 6]], max_new_tokens=16, temperature=1.0, top_p=1.0, stop_strings=("</action>",))
    n = len(pol.encode([head])[0])
    assert planner.calls[0][1] == PLANNER_STOPS and executor.calls[0][1] == ("</action>",)
    assert executor.calls[0][0] == [[5, 6, *pol.encode([head])[0]]]  # the executor continues the planner's text
    assert gens[0].planner_tokens == n and gens[0].text.startswith(head) and gens[0].stop_reason == "eos"
    # a planner that ends its turn at once leaves all of it to the executor (its eos dropped)
    quiet = PlannerExecutor(Scripted(pol, "", "eos"), executor)  # type: ignore[arg-type]
    g = quiet.generate([[5]], max_new_tokens=16)[0]
    assert g.planner_tokens == 0 and g.text == "<think>find a mug</think><action>look</action>"
    # in a collector on a real env (agent plans): the mask marks the planner's tokens, the env runs the action
    envs = [gym.make("PilotALFWorldSmall-v0", plan_mode="none") for _ in range(2)]
    set_plan_mode(envs, "agent")
    true_plan = tuple(envs[0].reset(seed=1, options={"split": "train"})[1]["subgoals"])
    head = "<plan>" + " ".join(f"Step {i}: {s}" for i, s in enumerate(true_plan, 1)) + "</plan>"
    n = len(pol.encode([head])[0])
    both = PlannerExecutor(Scripted(pol, head), executor)  # type: ignore[arg-type]
    agent = AgentSpec(prompt_format="adaplan", max_new_tokens=16, max_turns=2)
    trajs, _ = PilotCollector(both, envs, agent).collect([TaskSpec(1, {"split": "train"})] * 2)
    for tr in trajs:
        first, second = tr.turns
        assert first.response_mask == [1] * n + [0] * (len(first.response_ids) - n)
        assert first.command == "look" and first.extras["declared"] and first.extras["plan_shown"] == ()
        assert first.extras["plan"] == true_plan == second.extras["plan_shown"]
        assert first.extras["policy_tokens"] == n and first.extras["task"] and first.extras["num_subgoals"] > 0
        assert first.plan_score == 1.0 and second.plan_score == 1.0  # the env judges the true plan perfect
    with pytest.raises(TypeError, match="plan_mode"):
        set_plan_mode([object()], "agent")


def test_resume_continues_in_the_right_stage_with_the_saved_executor(trained: Recording) -> None:
    cfg = trained.config
    more = PilotRLConfig(**{**cfg.__dict__, "stage3_iterations": 2, "resume": True})
    again = Recording(more)
    again.train()
    rows = read_metrics(Path(cfg.output_dir) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4] and rows[-1]["pilotrl/stage"] == 3.0
    assert again.executor_frozen_at == 1
    for k, v in again.executor.model.state_dict().items():
        assert torch.equal(v, trained.snapshots[1][k]), k


def test_sft_mixes_given_plans_and_written_plans(trained: Recording) -> None:
    render = PromptRenderer(trained.policy, trained.agent)
    tasks = [TaskSpec(s, {"split": "train"}) for s in range(12)]
    firsts = {}
    for frac in (0.0, 0.5, 1.0):
        env = SFTPlanModes(gym.make("PilotALFWorldSmall-v0", plan_mode="agent"), frac)
        samples = expert_samples(env, tasks, render, max_turns=1)
        firsts[frac] = [(x.response_text.startswith("<plan>"), "Your current plan is" in trained.policy.decode(x.prompt_ids))
                        for x in samples]
    assert all(f == (True, False) for f in firsts[0.0])  # the expert writes the plan
    assert all(f == (False, True) for f in firsts[1.0])  # the oracle plan is in the prompt
    assert {(True, False), (False, True)} == set(firsts[0.5])
