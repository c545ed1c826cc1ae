"""The SB3 wrappers: SB3's and Gymnasium's env checkers, masks == admissible commands (property test),
safe bad indices, stable featurisation, and a short MaskablePPO training smoke test."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pilot_envs  # noqa: F401
from pilot_envs.core.text_env import NOTHING_HAPPENS
from pilot_envs.wrappers import (
    NO_OP,
    DiscreteCommands,
    FeaturizeObservation,
    bag_of_words,
    command_features,
    make_sb3_env,
    stable_hash,
)
from pilot_envs.wrappers.features import RELATION_NAMES

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

SMALL = "PilotALFWorldSmall-v0"
COL = {name: i for i, name in enumerate(RELATION_NAMES)}


def _base_commands(env: gym.Env) -> tuple[str, ...]:
    return env.unwrapped.backend.admissible_commands()


def _expected_mask(n_commands: int, k: int) -> np.ndarray:
    mask = np.zeros(k, dtype=bool)
    mask[: min(n_commands, k)] = True
    if n_commands == 0:
        mask[0] = True
    return mask


# ---------------------------------------------------------------------------------------- env checkers


# ``commands`` is deliberately 2-D (one row per slot, for CommandScoringPolicy); MultiInputPolicy flattens it
@pytest.mark.filterwarnings("ignore:Your observation commands has an unconventional shape")
@pytest.mark.parametrize(
    ("env_id", "k", "kwargs"),
    [
        (SMALL, 32, {"reward_mode": "progress"}),
        ("PilotALFWorld-PickClean-v0", 64, {"plan_mode": "oracle"}),
        ("PilotALFWorld-v0", 64, {"reward_mode": "milestone", "invalid_action_penalty": 0.1}),
    ],
)
def test_sb3_check_env_passes(env_id, k, kwargs):
    env = make_sb3_env(env_id, max_commands=k, **kwargs)
    sb3_check_env(env, warn=True, skip_render_check=True)
    assert env.action_space == gym.spaces.Discrete(k)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert all(v.dtype == np.float32 for v in obs.values())


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_gymnasium_check_env_passes_on_both_wrappers():
    from gymnasium.utils.env_checker import check_env

    discrete = DiscreteCommands(gym.make(SMALL).unwrapped, max_commands=32)
    check_env(discrete, skip_render_check=True)
    check_env(FeaturizeObservation(discrete), skip_render_check=True)


def test_featurize_needs_discrete_commands():
    with pytest.raises(TypeError, match="DiscreteCommands"):
        FeaturizeObservation(gym.make(SMALL))
    with pytest.raises(ValueError):
        DiscreteCommands(gym.make(SMALL), max_commands=0)


# ---------------------------------------------------------------------------------------- masks (property)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.sampled_from([4, 12, 32]),
    split=st.sampled_from([None, "valid_unseen", "train"]),
    picks=st.lists(st.integers(-5, 40), min_size=1, max_size=40),
)
def test_masks_always_match_admissible_commands(seed, k, split, picks):
    env = make_sb3_env(SMALL, max_commands=k)
    discrete = env.env
    options = {"split": split, "task_index": seed % 100} if split else None
    obs, info = env.reset(seed=seed, options=options)
    for pick in [None, *picks]:
        if pick is not None:
            obs, _, term, trunc, info = env.step(pick)
        available = _base_commands(env)
        mask = env.action_masks()
        assert mask.dtype == bool and mask.shape == (k,)
        np.testing.assert_array_equal(mask, _expected_mask(len(available), k))
        np.testing.assert_array_equal(info["action_mask"], mask)
        np.testing.assert_array_equal(obs["action_mask"], mask[: len(discrete.commands)].tolist() + [0] * (k - len(discrete.commands)))
        np.testing.assert_array_equal(obs["commands"][:, -1], obs["action_mask"])  # the "present" column
        assert set(discrete.commands) <= set(available)
        assert len(discrete.commands) == min(k, len(available))
        assert info["commands_dropped"] == len(available) - len(discrete.commands)
        if len(available) <= k:
            assert discrete.commands == available  # same stable order as the env
        if pick is not None and (term or trunc):
            break


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), picks=st.lists(st.integers(0, 63), min_size=1, max_size=30))
def test_masked_in_index_executes_its_slot(seed, picks):
    env = DiscreteCommands(gym.make(SMALL), max_commands=64)
    obs, _ = env.reset(seed=seed)
    for pick in picks:
        slots = obs["admissible_commands"]
        index = pick % len(slots)
        obs, _, term, trunc, info = env.step(index)
        assert info["slot_valid"] and info["action_index"] == index
        assert info["command"] == slots[index]
        assert info["action_valid"], f"admissible command {slots[index]!r} did nothing"
        if term or trunc:
            break


# ---------------------------------------------------------------------------------------- bad indices


@pytest.mark.parametrize("bad", [-1, -100, 32, 33, 10**9, np.int64(32), np.array([40]), np.array(-2)])
def test_out_of_range_index_is_a_safe_no_op(bad):
    env = make_sb3_env(SMALL, max_commands=32, reward_mode="progress", invalid_action_penalty=0.25)
    env.reset(seed=1)
    before = env.unwrapped.backend.state_hash()
    masks_before = env.action_masks().copy()
    obs, reward, term, trunc, info = env.step(bad)
    assert env.unwrapped._text == NOTHING_HAPPENS
    assert info["action_valid"] is False and info["slot_valid"] is False
    assert info["command"] == NO_OP
    assert reward == pytest.approx(-0.25)
    assert not term and not trunc
    assert env.unwrapped.backend.state_hash() == before
    np.testing.assert_array_equal(env.action_masks(), masks_before)
    assert env.observation_space.contains(obs)


def test_masked_slot_is_a_safe_no_op_and_counts_towards_the_time_limit():
    env = make_sb3_env(SMALL, max_commands=32)
    env.reset(seed=2)
    masked = int(np.flatnonzero(~env.action_masks())[0])
    steps = 0
    while True:
        _, reward, term, trunc, info = env.step(masked)
        steps += 1
        assert info["action_valid"] is False and not info["slot_valid"] and reward == 0.0
        if term or trunc:
            break
    assert trunc and not term and steps == env.spec.max_episode_steps == 50


@pytest.mark.parametrize("bad", ["go to cabinet 1", 1.5, None, True, np.array([1, 2])])
def test_non_integer_actions_raise_type_error(bad):
    env = make_sb3_env(SMALL, max_commands=32)
    env.reset(seed=0)
    with pytest.raises(TypeError, match="integer slot index"):
        env.step(bad)


def test_overflow_drops_low_priority_commands_first_and_keeps_order():
    base = gym.make(SMALL)
    obs, _ = base.reset(seed=0, options={"split": "valid_unseen", "task_index": 1})
    # go somewhere with objects so that examine/take commands appear
    target = next(c for c in obs["admissible_commands"] if c.startswith("go to toiletpaperhanger"))
    obs, *_ = base.step(target)
    full = obs["admissible_commands"]
    examines = [c for c in full if c.startswith("examine ")]
    assert examines, full
    k = len(full) - len(examines)
    env = DiscreteCommands(gym.make(SMALL), max_commands=k)
    env.reset(seed=0, options={"split": "valid_unseen", "task_index": 1})
    obs, _, _, _, info = env.step(env.commands.index(target))
    assert env.commands == tuple(c for c in full if not c.startswith("examine "))
    assert obs["admissible_commands"] == env.commands
    assert info["commands_dropped"] == len(examines)
    tiny = DiscreteCommands(gym.make(SMALL), max_commands=3)
    tiny.reset(seed=0, options={"split": "valid_unseen", "task_index": 1})
    assert tiny.commands == _base_commands(tiny)[:3]


# ---------------------------------------------------------------------------------------- featurisation


def test_stable_hash_is_crc32_and_independent_of_pythonhashseed():
    assert stable_hash("mug") == zlib.crc32(b"mug")
    code = "from pilot_envs.wrappers import bag_of_words as b; print(b('put a clean mug in cabinet 1', 64).nonzero()[0].tolist())"
    outs = set()
    for hashseed in ("1", "2"):
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hashseed},
        )
        outs.add(res.stdout.strip())
    assert outs == {str(bag_of_words("put a clean mug in cabinet 1", 64).nonzero()[0].tolist())}


def test_bag_of_words_hashes_words_and_pairs():
    v = bag_of_words("Mug 1.", 1 << 20)
    expected = {stable_hash(t) % (1 << 20) for t in ("mug", "1", "mug 1")}
    assert set(v.nonzero()[0].tolist()) == expected
    assert set(v.tolist()) <= {0.0, 1.0} and v.dtype == np.float32
    assert not bag_of_words("", 16).any()
    assert bag_of_words(["mug", "1"], 1 << 20).sum() == 2  # no pair across texts
    with pytest.raises(ValueError):
        bag_of_words("x", 0)


def test_command_features_relations():
    rows = command_features(
        ["take soapbar 1 from garbagecan 1", "go to cabinet 1", "go to sinkbasin 1"],
        slots=5, dim=16, task="clean some soapbar and put it in countertop",
        text="On the garbagecan 1, you see a soapbar 1.", plan_step="Go to the sinkbasin",
        counts={"go to cabinet 1": 4}, last="go to cabinet 1",
    )
    rel = rows[:, 16:]
    assert rows.shape == (5, 16 + len(RELATION_NAMES))
    assert rel[0, COL["rel_task"]] == pytest.approx(1 / 3)  # take, soapbar, garbagecan: soapbar is in the task
    assert rel[0, COL["rel_text"]] == 1.0  # soapbar 1 and garbagecan 1 are both in the feedback
    assert rel[1, COL["rel_text"]] == 0.0
    assert rel[2, COL["rel_plan"]] == 1.0 and rel[1, COL["rel_plan"]] == pytest.approx(0.5)  # "go" is in the plan step
    assert rel[1, COL["executed"]] == 1.0 and rel[0, COL["executed"]] == 0.0
    assert rel[1, COL["last"]] == 1.0 and rel[2, COL["last"]] == 0.0
    assert rel[:3, COL["present"]].tolist() == [1, 1, 1] and not rows[3:].any()
    with pytest.raises(ValueError):
        command_features(["a", "b"], slots=1, dim=4, task="", text="")


def test_history_features_follow_the_episode():
    env = make_sb3_env(SMALL, max_commands=32)
    discrete = env.env
    rel = slice(-len(RELATION_NAMES), None)

    def row(obs, command):
        return obs["commands"][discrete.commands.index(command), rel]

    obs, _ = env.reset(seed=5)
    assert not obs["commands"][:, rel][:, COL["executed"]].any()
    for _ in range(2):
        obs, *_ = env.step(discrete.commands.index("look"))
    assert row(obs, "look")[COL["executed"]] == pytest.approx(2 / 3) and row(obs, "look")[COL["last"]] == 1.0
    first, second = [c for c in discrete.commands if c.startswith("go to ")][:2]
    obs, *_ = env.step(discrete.commands.index(first))
    obs, *_ = env.step(discrete.commands.index(second))
    assert row(obs, first)[COL["executed"]] == pytest.approx(1 / 3) and row(obs, first)[COL["last"]] == 0.0
    assert row(obs, "look")[COL["last"]] == 0.0
    assert obs["elapsed"][0] == pytest.approx(4 / 50)
    obs, *_ = env.step(-1)  # a no-op is not a command: it leaves the counts alone and clears "last"
    assert row(obs, "look")[COL["executed"]] == pytest.approx(2 / 3)
    assert not obs["commands"][:, rel][:, COL["last"]].any()
    obs, _ = env.reset(seed=5)
    assert not obs["commands"][:, rel][:, COL["executed"]].any()  # history cleared on reset
    assert obs["elapsed"][0] == 0.0


def test_featurised_rollouts_are_deterministic():
    def rollout():
        env = make_sb3_env(SMALL, max_commands=16, plan_mode="oracle")
        obs, _ = env.reset(seed=11)
        out = [np.concatenate([v.ravel() for v in obs.values()])]
        rng = np.random.default_rng(0)
        for _ in range(20):
            obs, r, term, trunc, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            out.append(np.concatenate([v.ravel() for v in obs.values()] + [np.array([r], dtype=np.float32)]))
            if term or trunc:
                break
        return out

    a, b = rollout(), rollout()
    assert len(a) == len(b) > 1
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[0][256 + 64 : 256 + 64 + 128].any()  # the oracle plan shows up in the plan features


# ---------------------------------------------------------------------------------------- training smoke


@pytest.mark.parametrize("policy", ["MultiInputPolicy", "CommandScoringPolicy"])
def test_maskable_ppo_trains_and_respects_masks(policy, tmp_path):
    import torch

    torch.set_num_threads(1)
    if policy == "CommandScoringPolicy":
        from pilot_envs.wrappers.sb3_policy import CommandScoringPolicy as policy_cls

        kwargs = {"policy_kwargs": {"hidden": 32}}
    else:
        policy_cls, kwargs = policy, {"policy_kwargs": {"net_arch": [32]}}

    def make(i):
        def thunk():
            env = Monitor(make_sb3_env(SMALL, max_commands=32, reward_mode="progress"))
            env.reset(seed=i)
            return env

        return thunk

    venv = DummyVecEnv([make(0), make(1)])
    assert get_action_masks(venv).shape == (2, 32)
    model = MaskablePPO(policy_cls, venv, n_steps=64, batch_size=64, n_epochs=2, seed=0, **kwargs)
    params = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not torch.equal(a, b.detach()) for a, b in zip(params, model.policy.parameters(), strict=True))

    env = make_sb3_env(SMALL, max_commands=32)
    obs, _ = env.reset(seed=7)
    for _ in range(25):
        mask = env.action_masks()
        action, _ = model.predict(obs, action_masks=mask, deterministic=False)
        assert mask[int(action)], "the policy picked a masked slot"
        obs, _, term, trunc, info = env.step(action)
        assert info["slot_valid"] and info["action_valid"]
        if term or trunc:
            break

    model.save(tmp_path / "model.zip")
    loaded = MaskablePPO.load(tmp_path / "model.zip")
    obs, _ = env.reset(seed=7)
    a1, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
    a2, _ = loaded.predict(obs, action_masks=env.action_masks(), deterministic=True)
    assert int(a1) == int(a2)


def test_command_scorer_scores_each_slot_with_the_same_network():
    import torch

    from pilot_envs.wrappers.sb3_policy import CommandScorer

    torch.manual_seed(0)
    env = make_sb3_env(SMALL, max_commands=32)
    obs, _ = env.reset(seed=4)
    scorer = CommandScorer(env.observation_space, hidden=16)
    batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
    out = scorer(batch)
    n = int(obs["action_mask"].sum())
    assert out.shape == (1, 32 + 16) and n >= 2
    logits = out[0, :32]
    assert torch.all(logits[n:] == 0)  # empty slots are not scored
    # swapping two commands swaps their scores and changes nothing else
    swapped = {k: v.clone() for k, v in batch.items()}
    swapped["commands"][0, [0, n - 1]] = batch["commands"][0, [n - 1, 0]]
    expected = logits.clone()
    expected[[0, n - 1]] = logits[[n - 1, 0]]
    torch.testing.assert_close(scorer(swapped)[0, :32], expected)
    # a slot's score depends on its own row and the state, not on the other slots' rows
    other = {k: v.clone() for k, v in batch.items()}
    other["commands"][0, 1:] = torch.rand_like(other["commands"][0, 1:])
    changed = scorer(other)[0, :32]
    torch.testing.assert_close(changed[0], logits[0])
    assert not torch.allclose(changed[1:n], logits[1:n])


class _NoCommandsEnv(gym.Env):
    """A text env that offers no admissible command at all (some engines do, e.g. after game over)."""

    def __init__(self):
        from pilot_envs.core import spaces as pspaces

        self.observation_space = pspaces.observation_space(num_subgoals=2, max_commands=4)
        self.action_space = pspaces.action_space()
        self.received: list[str] = []

    def _obs(self):
        return {"text": "dark", "task": "wait", "plan": (), "subgoals_done": np.zeros(2, dtype=np.int8),
                "progress": np.zeros(1, dtype=np.float32), "admissible_commands": ()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        self.received.append(action)
        return self._obs(), 0.0, False, False, {"action_valid": False, "command": ""}


def test_no_admissible_command_unmasks_slot_zero_as_a_no_op():
    env = FeaturizeObservation(DiscreteCommands(_NoCommandsEnv(), max_commands=4))
    obs, info = env.reset(seed=0)
    assert env.action_masks().tolist() == [True, False, False, False]
    assert not obs["action_mask"].any()  # no filled slot to describe
    _, _, _, _, info = env.step(0)
    assert env.unwrapped.received == [NO_OP] and info["slot_valid"] is False
