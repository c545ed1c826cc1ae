"""HiPER: segment boundaries, shaping numbers, value-head read positions, per-tag token advantages, critic
masking, and a short CPU training run with the tiny model. (HAE's numbers are in test_advantages.py.)"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import PreTrainedTokenizerFast

from trainers.core.advantages import TurnBatch, standardise
from trainers.core.cli import config_from_args
from trainers.core.policy import Policy
from trainers.core.registry import ADVANTAGES
from trainers.core.rollout import TaskSpec, Trajectory, Turn
from trainers.core.sft import expert_response
from trainers.core.tiny import DEFAULT_CORPUS, build_tiny, tiny_corpus_from_texts
from trainers.core.value import ValueModel
from trainers.hiper import HiPERConfig, HiPERTrainer
from trainers.hiper.hae import ADV_HIGH, ADV_SWITCH, RET_HIGH, SEG_START, V_HIGH, V_LOW, V_SWITCH, HAEConfig
from trainers.hiper.steps import TaskStepInfo, step_ends, task_steps
from trainers.hiper.structure import Shaping, parse_hiper, segment_lengths, segment_starts, segment_stats, shape
from trainers.hiper.tokens import turn_layout
from trainers.hiper.trainer import LOW_INDEX


def resp(switch: str | None, subgoal: str | None, action: str | None = "look") -> str:
    parts = [f"<switch>{switch}</switch>" if switch is not None else "",
             f"<subgoal>{subgoal}</subgoal>" if subgoal is not None else "",
             f"<action>{action}</action>" if action is not None else ""]
    return "".join(parts)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tiny_corpus_from_texts([*DEFAULT_CORPUS, "find a mug", "go to shelf 1"])
    return build_tiny(tmp_path_factory.mktemp("tiny") / "m", corpus, hidden=32, layers=1, heads=2, seed=0)


@pytest.fixture(scope="module")
def policy(tiny_path: Path) -> Policy:
    return Policy.from_pretrained(tiny_path, seed=0)


@pytest.fixture(scope="module")
def bpe_tok() -> PreTrainedTokenizerFast:
    """Byte-level BPE trained so that tags merge across span borders (tokens like ``></`` and ``><``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=290, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["</s>"], show_progress=False)
    words = ["</switch><subgoal>", "</subgoal><action>", "KEEP", "find a mug", "go to shelf 1"]
    tok.train_from_iterator(words * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")


# -------------------------------------------------------------------------------- segments, shaping
def test_parse_and_segment_boundaries() -> None:
    texts = [resp("KEEP", "a"), resp("KEEP", "a"), resp("switch", "b"), resp(None, "b"),
             resp("maybe", "b"), resp("SWITCH", "c"), "go to shelf 1"]
    parsed = [parse_hiper(t) for t in texts]
    assert [p.switch for p in parsed] == ["KEEP", "KEEP", "SWITCH", None, None, "SWITCH", None]
    assert [p.format_ok for p in parsed] == [True, True, True, True, False, True, True]
    assert parsed[2].subgoal == "b" and parsed[2].command == "look" and parsed[6].command == "go to shelf 1"
    # turn 0 always starts (even when it says KEEP); afterwards only an explicit SWITCH does
    assert segment_starts([p.switch for p in parsed]) == [True, False, True, False, False, True, False]
    assert segment_starts([]) == []


def test_shaping_numbers_by_hand() -> None:
    texts = [
        resp("SWITCH", "find a mug"),      # start
        resp("KEEP", " Find  a MUG "),     # keep, same subgoal up to case/space
        resp("KEEP", "take the mug"),      # keep, changed, invalid
        resp(None, None),                  # missing switch = keep; no subgoal: keeps "take the mug"
        resp("KEEP", "find a mug"),        # keep, changed (against "take the mug")
        resp("SWITCH", "go"),              # start
    ]
    valid = [True, True, False, True, True, True]
    s = shape([parse_hiper(t) for t in texts], valid, Shaping(invalid_penalty=0.1, keep_penalty=0.3,
                                                               subgoal_change_penalty=0.3))
    assert s.seg_start == [True, False, False, False, False, True]
    assert s.subgoal_changed == [False, False, True, False, True, False]
    # 4 KEEP turns of T = 6: total 0.3 * 4/6 = 0.2, i.e. 0.05 on each KEEP turn
    assert s.keep_penalty == pytest.approx([0, -0.05, -0.05, -0.05, -0.05, 0])
    assert sum(s.keep_penalty) == pytest.approx(-0.3 * 4 / 6)
    assert s.invalid == pytest.approx([0, 0, -0.1, 0, 0, 0])
    assert s.change_penalty == pytest.approx([0, 0, -0.3, 0, -0.3, 0])
    assert s.total == pytest.approx([0, -0.05, -0.45, -0.05, -0.35, 0])
    # the first turn is never a KEEP turn, even when it writes KEEP; nothing to have changed from yet
    one = shape([parse_hiper(resp("KEEP", "x"))], [True], Shaping())
    assert one.total == [0.0] and one.seg_start == [True]
    with pytest.raises(ValueError, match="magnitude"):
        Shaping(keep_penalty=-0.3)


def _turn(text: str, idx: int, traj: int, *, reward: float = 0.0, valid: bool = True, done: bool = False,
          response_ids: list[int] | None = None) -> Turn:
    ids = response_ids if response_ids is not None else [3] * 4
    return Turn(prompt_ids=[1, 2, 3], response_ids=ids, response_mask=[1] * len(ids), old_logprobs=[-1.0] * len(ids),
                reward=reward, done=done, truncated=False, turn_idx=idx, traj_id=traj, group_id=traj,
                response_text=text, observation="", command="look", state_hash="", progress=0.0, plan_score=0.0,
                plan_step=0, action_valid=valid, format_ok=parse_hiper(text).format_ok, won=done, finished=True)


def _traj(traj_id: int, turns: list[Turn], terminated: bool) -> Trajectory:
    return Trajectory(traj_id, traj_id, TaskSpec(traj_id), turns, won=terminated, terminated=terminated,
                      truncated=not terminated)


def _bare_trainer(policy: Policy | None = None, **cfg) -> HiPERTrainer:
    """A trainer object without rollout machinery: enough for the batch/score/advantage/token hooks."""
    tr = HiPERTrainer.__new__(HiPERTrainer)
    tr.config = HiPERConfig(**cfg)
    tr.ref_model = None
    tr.policy = policy
    tr.accelerator = SimpleNamespace(autocast=nullcontext, num_processes=1)
    return tr


def test_score_adds_shaping_to_env_rewards() -> None:
    a = [_turn(resp("SWITCH", "a"), 0, 0, reward=0.5), _turn(resp("KEEP", "b"), 1, 0, valid=False),
         _turn(resp("KEEP", "b"), 2, 0, reward=10.0, done=True)]
    b = [_turn("<switch>KEEP</switch><subgoal>a</subgoal><action>look", 0, 1, reward=-0.1)]
    tr = _bare_trainer()
    batch = SimpleNamespace(trajectories=[_traj(0, a, True), _traj(1, b, False)], turns=[*a, *b], extras={})
    r = tr.score(batch)
    # traj 0: KEEP turns 1, 2 of T=3 -> -0.1 each; turn 1 changed (a -> b) -0.3 and invalid -0.1
    # traj 1: one turn, unclosed <action> -> malformed -> invalid -0.1
    assert r.tolist() == pytest.approx([0.5, -0.5, 9.9, -0.2])
    assert batch.extras[SEG_START].tolist() == [True, False, False, True]


# --------------------------------------------------------------------------------------- token layout
def _span_text(tok, ids: list[int], mask: torch.Tensor) -> str:
    return tok.decode([i for i, m in zip(ids, mask.tolist(), strict=True) if m])


@pytest.mark.parametrize("which", ["tiny", "bpe"])
def test_layout_masks_and_low_index(which: str, policy: Policy, bpe_tok) -> None:
    tok = policy.tokenizer if which == "tiny" else bpe_tok
    text = resp("KEEP", "find a mug", "go to shelf 1")
    ids = [*tok.encode(text, add_special_tokens=False), tok.eos_token_id]
    lay = turn_layout(tok, ids)
    m = lay.masks
    assert not (m["switch"] & m["subgoal"]).any() and not (m["subgoal"] & m["action"]).any()
    assert not (m["switch"] & m["action"]).any()
    assert not any(mask[-1] for mask in m.values()), "eos is never trained"
    assert (m["switch"] | m["subgoal"] | m["action"])[:-1].all(), "every token of the answer is in a span"
    if which == "tiny":  # tags are single tokens: each span is exact
        assert _span_text(tok, ids, m["switch"]) == "<switch>KEEP</switch>"
        assert _span_text(tok, ids, m["subgoal"]) == "<subgoal>find a mug</subgoal>"
        assert _span_text(tok, ids, m["action"]) == "<action>go to shelf 1</action>"
    else:  # BPE merged across borders: the tokenizer really straddles spans, each token went to one side
        pieces = [tok.decode([i]) for i in ids]
        assert "><" in pieces, pieces
        # "><" overlaps both neighbours by one character: the tie goes to the earlier span
        assert _span_text(tok, ids, m["switch"]) == "<switch>KEEP</switch><"
        assert _span_text(tok, ids, m["subgoal"]) == "subgoal>find a mug</subgoal><"
        assert _span_text(tok, ids, m["action"]) == "action>go to shelf 1</action>"
    # V_L is read right after the token that completes </subgoal> (with BPE that token is "><")
    k = lay.low_index
    assert "</subgoal>" in tok.decode(ids[:k]) and "</subgoal>" not in tok.decode(ids[: k - 1])
    assert tok.decode(ids[:k]).endswith("</subgoal>" if which == "tiny" else "</subgoal><")
    # without tags around them: only the contents
    inner = turn_layout(tok, ids, include_tags=False).masks
    if which == "tiny":
        assert _span_text(tok, ids, inner["subgoal"]) == "find a mug"
        assert _span_text(tok, ids, inner["switch"]) == "KEEP"


def test_low_index_falls_back_to_turn_start(policy: Policy) -> None:
    tok = policy.tokenizer
    for text in ("<switch>KEEP</switch><action>look</action>", "<subgoal>find a mug<action>look</action>", "look"):
        ids = tok.encode(text, add_special_tokens=False)
        assert turn_layout(tok, ids).low_index == 0, text
    ids = tok.encode("<subgoal>a</subgoal><subgoal>b</subgoal>", add_special_tokens=False)
    assert tok.decode(ids[: turn_layout(tok, ids).low_index]) == "<subgoal>a</subgoal>", "the first span counts"


class PositionCritic(nn.Module):
    """values[b, j, k] = 100 k + j: reading a value tells exactly where and from which head it came."""

    def forward(self, prompts, responses):
        r_max = max(len(r) for r in responses)
        j = torch.arange(1 + r_max, dtype=torch.float32)
        values = (j[None, :, None] + 100 * torch.arange(3.0)[None, None, :]).expand(len(prompts), -1, -1)
        return values.clone(), torch.ones(len(prompts), 1 + r_max, dtype=torch.bool)


def _tiny_batch(tr: HiPERTrainer, specs: list[list[tuple[str, float]]]) -> object:
    """Build an RLBatch through the trainer's make_batch + score from (text, env reward) per turn."""
    tok = tr.policy.tokenizer
    trajs = []
    for i, spec in enumerate(specs):
        turns = [_turn(text, t, i, reward=r, done=t == len(spec) - 1,
                       response_ids=[*tok.encode(text, add_special_tokens=False), tok.eos_token_id])
                 for t, (text, r) in enumerate(spec)]
        for t in turns:
            t.prompt_ids = tok.encode(f"prompt {t.turn_idx} of {i} look", add_special_tokens=False)
        trajs.append(_traj(i, turns, True))
    batch = tr.make_batch(trajs)
    batch.rewards = tr.score(batch)
    return batch


SPECS = [[(resp("SWITCH", "find a mug", "go to shelf 1"), 0.0), (resp("KEEP", "find a mug"), 0.2),
          (resp("SWITCH", "take a mug", "take mug 1 from shelf 1"), 1.0)],
         [(resp("SWITCH", "go"), 0.0), ("<switch>KEEP</switch><action>look</action>", 10.0)]]


def test_value_heads_read_at_exact_positions(policy: Policy) -> None:
    tr = _bare_trainer(policy)
    tr.critic = PositionCritic()
    batch = _tiny_batch(tr, SPECS)
    low = batch.extras[LOW_INDEX]
    v = tr.critic_heads(batch.prompt_ids, batch.response_ids, low)
    assert v[:, 0].tolist() == [0.0] * 5, "V_H after the last prompt token"
    assert v[:, 2].tolist() == [200.0] * 5, "V_b after the last prompt token"
    assert v[:, 1].tolist() == [100.0 + k for k in low.tolist()]
    tok = policy.tokenizer
    for ids, k in zip(batch.response_ids, low.tolist(), strict=True):
        if "</subgoal>" in tok.decode(ids):
            assert tok.convert_ids_to_tokens(ids[k - 1]) == "</subgoal>"
        else:
            assert k == 0
    assert low.tolist()[-1] == 0


def test_critic_heads_match_the_trunk_on_the_prefix(policy: Policy) -> None:
    """The batched, cut, micro-batched read equals running the critic on prompt + response[:low_index]."""
    tr = _bare_trainer(policy, micro_batch_tokens=40)
    torch.manual_seed(0)
    tr.critic = ValueModel.from_policy(policy, 3)
    nn.init.normal_(tr.critic.heads.weight)
    batch = _tiny_batch(tr, SPECS)
    v = tr.critic_heads(batch.prompt_ids, batch.response_ids, batch.extras[LOW_INDEX])
    with torch.no_grad():
        for i, (p, r) in enumerate(zip(batch.prompt_ids, batch.response_ids, strict=True)):
            k = int(batch.extras[LOW_INDEX][i])
            start = tr.critic([p])[0][0, 0]
            after = tr.critic([p + r[:k]])[0][0, 0]
            assert v[i].tolist() == pytest.approx([float(start[0]), float(after[1]), float(start[2])], abs=1e-5)


def test_advantages_go_exactly_on_their_tags(policy: Policy) -> None:
    tr = _bare_trainer(policy)
    tr.critic = PositionCritic()
    batch = _tiny_batch(tr, SPECS)
    batch.adv_output = out = tr.compute_advantages(batch)
    # separate standardisation of the three; A^H only over segment-start turns
    low = batch.extras[LOW_INDEX]
    raw = ADVANTAGES.get("hae")(TurnBatch.from_nested(
        [[0.0, 0.2 - 1 / 3 * 0.3, 1.0], [0.0, 10.0 - 0.15]], extras={
            SEG_START: [[True, False, True], [True, False]], V_HIGH: [[0.0] * 3, [0.0] * 2],
            V_LOW: [[100.0 + k for k in low[:3].tolist()], [100.0 + k for k in low[3:].tolist()]],
            V_SWITCH: [[200.0] * 3, [200.0] * 2]}), HAEConfig(gamma=1.0, lam=1.0, lam_high=0.95))
    starts = torch.tensor([True, False, True, True, False])
    assert torch.allclose(out.advantages, standardise(raw.advantages), atol=1e-5)
    assert torch.allclose(out.extras[ADV_HIGH], standardise(raw.extras[ADV_HIGH], starts), atol=1e-5)
    assert torch.allclose(out.extras[ADV_SWITCH], standardise(raw.extras[ADV_SWITCH]), atol=1e-5)
    assert out.extras[ADV_HIGH][~starts].abs().max() == 0
    adv, w = tr.token_advantages(batch, out), tr.token_weights(batch)
    tok = policy.tokenizer
    for i, ids in enumerate(batch.response_ids):
        names = tok.convert_ids_to_tokens(ids)
        span = None
        for j, name in enumerate(names):
            if name in ("<switch>", "<subgoal>", "<action>"):
                span = name[1:-1]
            expected = {"switch": out.extras[ADV_SWITCH][i], "action": out.advantages[i],
                        "subgoal": out.extras[ADV_HIGH][i] if starts[i] else None}.get(span)
            if expected is None:
                assert adv[i, j] == 0 and w[i, j] == 0, (i, j, name)
            else:
                assert adv[i, j] == pytest.approx(float(expected)) and w[i, j] == 1, (i, j, name)
            if name in ("</switch>", "</subgoal>", "</action>"):
                span = None
        assert (adv[i, len(ids):] == 0).all() and (w[i, len(ids):] == 0).all()


def test_critic_loss_uses_each_head_on_its_own_turns(policy: Policy) -> None:
    def heads_after(coefs: tuple[float, float, float], ret_high_noise: bool) -> torch.Tensor:
        tr = _bare_trainer(policy, value_coef_high=coefs[0], value_coef_low=coefs[1], value_coef_switch=coefs[2],
                           critic_lr=1e-2, max_grad_norm=0.0)
        torch.manual_seed(0)
        tr.critic = ValueModel.from_policy(policy, 3)
        tr.critic_module = tr.critic
        tr.critic_optimizer = torch.optim.SGD(tr.critic.parameters(), lr=0.1)
        tr.backward_micro_batches = lambda module, losses, sync: [loss.backward() for loss in losses]
        tr.global_sum = lambda x: x
        batch = _tiny_batch(tr, SPECS)
        batch.adv_output = tr.compute_advantages(batch)
        if ret_high_noise:  # targets of non-start turns must not matter to V_H
            batch.adv_output.extras[RET_HIGH][torch.tensor([1, 4])] = 1e3
        before = tr.critic.heads.weight.detach().clone()
        stats = tr.update_critic(batch, list(range(len(batch))))
        assert math.isfinite(stats["losses/value"])
        return tr.critic.heads.weight.detach() - before

    only_low = heads_after((0.0, 1.0, 0.0), False)
    assert only_low[1].abs().sum() > 0 and only_low[0].abs().sum() == 0 and only_low[2].abs().sum() == 0
    assert torch.equal(heads_after((1.0, 0.0, 0.0), False), heads_after((1.0, 0.0, 0.0), True))


# ------------------------------------------------------------------------------ segment lengths, task steps
def test_segment_lengths_and_stats_by_hand() -> None:
    assert segment_lengths([True, False, False, True, True, False]) == [3, 1, 2]
    assert segment_lengths([False, False]) == [2]  # turn 0 starts a segment whatever its flag
    assert segment_lengths([]) == []
    st_ = segment_stats([3, 1, 2, 1])
    assert (st_["segments"], st_["mean"], st_["median"], st_["share_multi"]) == (4, 1.75, 1.5, 0.5)
    assert st_["turn_share_multi"] == 5 / 7
    assert (st_["share_1"], st_["share_2"], st_["share_3"], st_["share_4-5"]) == (0.5, 0.25, 0.25, 0.0)
    assert segment_stats([])["mean"] == 0.0 and segment_stats([12])["share_10+"] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=1, max_size=30), min_size=1, max_size=8))
def test_segment_lengths_partition_the_turns(trajs: list[list[bool]]) -> None:
    lengths = [x for starts in trajs for x in segment_lengths(starts)]
    assert sum(lengths) == sum(len(t) for t in trajs) and min(lengths) >= 1
    assert len(lengths) == sum(sum(segment_starts(["SWITCH" if s else "KEEP" for s in t])) for t in trajs)
    s = segment_stats(lengths)
    assert s["mean"] == sum(lengths) / len(lengths) and 1 <= s["median"] <= max(lengths)
    assert math.isclose(sum(v for k, v in s.items() if k.startswith("share_") and k[6].isdigit()), 1.0)
    assert math.isclose(s["share_multi"], 1.0 - s["share_1"])


def test_task_steps_merge_navigation_into_the_next_milestone() -> None:
    ms = ["find a mug", "take the mug", "go to the sinkbasin", "clean the mug with the sinkbasin",
          "go to the shelf", "put the mug in the shelf"]
    assert step_ends(ms) == [1, 3, 5]
    assert task_steps(ms, [1, 1, 0, 0, 0, 0]) == (["take the mug", "clean the mug with the sinkbasin",
                                                   "put the mug in the shelf"], [True, False, False])
    assert step_ends(["look", "go to the lamp"]) == [0, 1]  # a trailing navigation milestone is a step of its own
    assert step_ends([]) == []
    with pytest.raises(ValueError, match="done flags"):
        task_steps(ms, [0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["find a x", "go to the y", "take the x", "put the x in the y", "use the z"]),
                min_size=1, max_size=10), st.data())
def test_task_steps_are_the_non_navigation_milestones(ms: list[str], data: st.DataObject) -> None:
    reached = data.draw(st.integers(0, len(ms)))
    steps, done = task_steps(ms, [i < reached for i in range(len(ms))])
    assert steps[-1] == ms[-1] and [s for s in steps[:-1] if s.split()[0] in ("find", "go")] == []
    assert len(steps) == len([m for m in ms[:-1] if m.split()[0] not in ("find", "go")]) + 1
    assert done == sorted(done, reverse=True)  # done steps are a prefix
    assert sum(done) <= reached


@pytest.mark.parametrize("env_id", ["PilotALFWorldSmall-v0", "PilotALFWorld-v0"])
def test_task_step_labels_give_the_expert_multi_turn_segments(env_id: str) -> None:
    """The SFT expert's SWITCH labels: every milestone (one-turn segments) vs task steps (longer ones), and a
    task step's subgoal stays fixed inside its segment (no KEEP turn changes it)."""
    def play(env: gym.Env, seed: int) -> list[tuple[bool, str]]:
        obs, info = env.reset(seed=seed, options={"split": "valid_unseen", "task_index": seed})
        carried, out = None, []
        for turn in range(30):
            if not info.get("expert_action"):
                break
            text, written = expert_response("hiper", obs, info, turn_idx=turn, previous=carried)
            parsed = parse_hiper(text)
            out.append((turn == 0 or parsed.switches, parsed.subgoal or ""))
            carried = written or carried
            obs, _, term, trunc, info = env.step(text)
            if term or trunc:
                assert info["won"]
                break
        return out

    base = gym.make(env_id, task_types=("pick_clean_then_place_in_recep",))
    fine, coarse = [], []
    for seed in range(12):
        fine += segment_lengths([s for s, _ in play(base, seed)])
        turns = play(TaskStepInfo(base), seed)
        coarse += segment_lengths([s for s, _ in turns])
        assert [g for s, g in turns if s] == [g for i, (_, g) in enumerate(turns) if i == 0 or g != turns[i - 1][1]]
        assert [g for s, g in turns if s][-1].startswith("put")
    assert segment_stats(fine)["mean"] < 1.3 < 2.0 <= segment_stats(coarse)["mean"]
    assert segment_stats(coarse)["share_multi"] > 0.8


def test_hiper_sft_env_labels_task_steps(tmp_path: Path) -> None:
    cfg = dict(output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), tiny_hidden=32,
               tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=4, tensorboard=False, progress_bar=False)
    env = HiPERTrainer(HiPERConfig(**cfg)).sft_env()
    _, info = env.reset(seed=0)
    assert isinstance(env, TaskStepInfo) and not info["subgoals"][0].startswith(("find", "go"))
    env = HiPERTrainer(HiPERConfig(**{**cfg, "sft_segments": "milestones", "overwrite": True})).sft_env()
    assert not isinstance(env, TaskStepInfo) and env.reset(seed=0)[1]["subgoals"][0].startswith("find")
    with pytest.raises(ValueError, match="sft_segments"):
        HiPERConfig(sft_segments="turns")


# ------------------------------------------------------------------------------------------ end to end
def test_config_cli_and_validation() -> None:
    cfg = config_from_args(HiPERConfig, ["--keep-penalty", "0.5", "--lam-high", "0.9", "--iterations", "3"])
    assert (cfg.keep_penalty, cfg.lam_high, cfg.prompt_format, cfg.advantage) == (0.5, 0.9, "hiper", "hae")
    assert (cfg.gamma, cfg.lam, cfg.kl_coef, cfg.clip_lo, cfg.clip_hi) == (1.0, 1.0, 0.01, 0.2, 0.2)
    with pytest.raises(ValueError, match="switch/subgoal/action"):
        HiPERConfig(prompt_format="think_action")
    with pytest.raises(ValueError, match="lam_high"):
        HiPERConfig(lam_high=1.5)


def test_smoke_training_run(tmp_path: Path) -> None:
    cfg = HiPERConfig(output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), tiny_hidden=32,
                      tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=8, sft_episodes=8, sft_lr=5e-3,
                      sft_steps=40, sft_batch_size=8,
                      iterations=2, tasks_per_iteration=2, num_envs=2, max_turns=3, max_new_tokens=24,
                      eval_tasks=2, lr=1e-3, critic_lr=1e-3, tensorboard=False, progress_bar=False,
                      save_final_model=False, instruction="Answer with <switch>, <subgoal> and <action>.")
    tr = HiPERTrainer(cfg)
    m = tr.train()
    for key in ("env/success_rate", "eval/success_rate", "hiper/switch_rate", "hiper/segments_per_episode",
                "hiper/segment_length_median", "hiper/segment_length_share_multi",
                "losses/value_high", "losses/value_low", "losses/value_switch", "losses/kl", "losses/policy",
                "value/high_explained_variance", "reward/shaping_keep_penalty", "policy/trained_token_frac"):
        assert key in m and math.isfinite(m[key]), key
    assert m["env/steps_total"] > 0 and 0 < m["policy/trained_token_frac"] <= 1
    assert tr.critic.heads.weight.abs().sum() > 0, "the zero-initialised heads were trained"
    ref = dict(tr.ref_model.named_parameters())
    assert all(not p.requires_grad for p in ref.values())
    assert any(not torch.equal(p, ref[n]) for n, p in tr.policy.model.named_parameters()), "the actor moved"
    ckpts = list((tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts and (tmp_path / "run" / "metrics.jsonl").exists()
