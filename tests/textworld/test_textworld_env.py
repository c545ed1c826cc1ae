"""PilotTextWorld-v0 against the real TextWorld engine: every generator, milestones and progress from the winning
policy, Inform 7's answers to bad commands, splits, and the game cache (determinism, concurrency, helper process)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("textworld", reason="PilotTextWorld needs the optional textworld package")

import pilot_envs
from pilot_envs.core.backend import cache_dir
from pilot_envs.core.text_env import NOTHING_HAPPENS
from pilot_envs.textworld import games
from pilot_envs.textworld.games import GameSpec, ensure_game, game_seed, make_settings

ENV_ID = "PilotTextWorld-v0"
if ENV_ID not in gym.registry:  # until registration.py lists it
    gym.register(ENV_ID, entry_point="pilot_envs.textworld.env:PilotTextWorldEnv", max_episode_steps=50)

SMALL = {"challenge": "treasure_hunter", "level": 1}  # one room's worth of quest: the cheapest game to make


@pytest.fixture(scope="session")
def tw_cache() -> Path:
    """The game cache every test (and the registry-wide tests) share: games are made once per machine."""
    return cache_dir()


def play_expert(env: gym.Env, info: dict, limit: int = 60) -> tuple[dict, dict, float, bool]:
    total, obs = 0.0, None
    for _ in range(limit):
        obs, r, term, trunc, info = env.step(info["expert_action"])
        total += r
        if term or trunc:
            return obs, info, total, term
    return obs, info, total, False


# ---------------------------------------------------------------------------------------------- pure data
def test_settings_validation_and_split_seeds():
    assert make_settings("treasure_hunter", 3, None) == {"level": 3}
    assert make_settings("cooking", None, {"recipe": 2, "take": 2})["recipe"] == 2
    for args, err in ((("maze", None, None), ValueError), (("cooking", 2, None), ValueError),
                      (("treasure_hunter", 31, None), ValueError), (("cooking", None, {"spice": 1}), ValueError),
                      (("cooking", None, {"take": 3}), ValueError), (("cooking", None, {"open": 1}), TypeError),
                      (("simple", None, {"rewards": "lots"}), ValueError), (("coin_collector", 0, None), ValueError)):
        with pytest.raises(err):
            make_settings(*args)
    seeds = {split: {game_seed(split, i) for i in range(100)} for split in ("train", "valid", "test")}
    assert all(len(s) == 100 for s in seeds.values())
    assert not (seeds["train"] & seeds["valid"]) and not (seeds["train"] & seeds["test"])
    assert game_seed("train", 7) == game_seed("train", 7)


# ---------------------------------------------------------------------------------------------- playing
@pytest.mark.parametrize(
    "kwargs",
    [
        {"challenge": "coin_collector", "level": 3},
        {"challenge": "treasure_hunter", "level": 12},
        {"challenge": "cooking", "settings": {"recipe": 2, "take": 1, "go": 1, "open": True, "cut": True}},
        {"challenge": "simple"},
        {"challenge": "custom", "settings": {"nb_rooms": 3, "nb_objects": 4, "quest_length": 3}},
    ],
    ids=lambda k: k["challenge"],
)
def test_every_generator_makes_a_game_the_expert_wins(kwargs, tw_cache):
    env = gym.make(ENV_ID, reward_mode="progress", success_reward=10.0, plan_mode="oracle", **kwargs)
    obs, info = env.reset(seed=0, options={"split": "train", "task_index": 0})
    assert obs["task"] and obs["plan"] and info["subgoals"] and info["expert_plan"]
    assert info["task_type"] == kwargs["challenge"] and info["task_id"].startswith("tw-")
    p0 = float(obs["progress"][0])
    obs, info, total, won = play_expert(env, info)
    assert won and info["won"] and info["progress"] == 1.0 and all(info["subgoals_done"])
    assert total == pytest.approx(10.0 + 1.0 - p0)  # progress rewards telescope
    env.close()


def test_milestones_and_progress_follow_the_winning_policy(tw_cache):
    env = gym.make(ENV_ID, challenge="coin_collector", level=3, plan_mode="oracle")
    obs, info = env.reset(seed=0, options={"split": "train", "task_index": 1})
    policy = info["expert_plan"]
    assert policy[-1] == "take coin" and all(c.startswith("go ") for c in policy[:-1])
    assert len(info["subgoals"]) == 2 and info["subgoals"][0].startswith("go to the ")
    assert obs["plan"] == tuple(s[:1].upper() + s[1:] for s in info["subgoals"])
    obs, _, _, _, info = env.step(policy[0])
    assert info["progress"] == pytest.approx(1 / len(policy)) and info["subgoals_done"] == (False, False)
    back = {"north": "south", "south": "north", "east": "west", "west": "east"}[policy[0].split()[1]]
    obs, _, _, _, info = env.step(f"go {back}")  # walking back undoes the progress: a function of state
    assert info["progress"] == 0.0 and info["expert_plan"] == policy
    for command in policy[:-1]:
        obs, _, _, _, info = env.step(command)
    assert info["subgoals_done"] == (True, False) and obs["subgoals_done"][:2].tolist() == [1, 0]
    assert info["plan_step"] == 1 and info["expert_plan"] == ("take coin",)
    env.close()


def test_inform7_answers_are_kept_and_validity_is_honest(tw_cache):
    env = gym.make(ENV_ID, **SMALL)
    obs, info = env.reset(seed=0, options={"split": "train", "task_index": 0})
    start, expert = info["state_hash"], info["expert_plan"]
    for command, text in (("xyzzy", "That's not a verb I recognise."), ("eat the moon", "You can't see any such thing."),
                          ("wait", "Time passes.")):
        obs, _, term, _, info = env.step(command)
        assert obs["text"].strip() == text and not info["action_valid"] and info["state_hash"] == start and not term
    obs, _, _, _, info = env.step("look")  # inspecting is a valid action that changes nothing
    assert info["action_valid"] and info["state_hash"] == start
    for meta in ("restart", "quit", "undo", "restore"):  # would desynchronise TextWorld's tracker: refused
        obs, _, _, _, info = env.step(meta)
        assert obs["text"] == NOTHING_HAPPENS and not info["action_valid"] and info["state_hash"] == start
    obs, info, _, won = play_expert(env, info)
    assert won and len(expert) >= 1
    env.close()


def test_splits_and_reset_options(tw_cache):
    env = gym.make(ENV_ID, split_sizes={"train": 3, "valid": 2, "test": 1}, **SMALL)
    backend = env.unwrapped.backend
    assert backend.splits() == {"train": 3, "valid": 2, "test": 1}
    ids = {env.reset(seed=s)[1]["task_id"] for s in range(12)}
    assert 1 < len(ids) <= 3  # no options: drawn from the three training games
    _, info = env.reset(seed=0, options={"split": "valid", "task_index": 1})
    assert info["split"] == "valid" and info["task_id"] not in ids
    _, a = env.reset(seed=0, options={"game_seed": 12345})
    _, b = env.reset(seed=9, options={"game_seed": 12345})
    assert a["task_id"] == b["task_id"] and a["split"] == "custom"
    for bad, err in (({"split": "valid", "task_index": 2}, ValueError), ({"split": "dev"}, ValueError),
                     ({"game_seed": 5, "split": "train"}, ValueError), ({"task_index": 1.0}, TypeError)):
        with pytest.raises(err):
            env.reset(seed=0, options=bad)
    env.close()


# ---------------------------------------------------------------------------------------------- the cache
_GENERATE_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    from pilot_envs.textworld import games
    spec = games.GameSpec("treasure_hunter", (("level", 1),), int(sys.argv[3]), "valid")
    games.ensure_game(spec, sys.argv[2])  # a private cache: this process surely starts a helper
    games.ensure_game(spec, sys.argv[1])  # the shared cache, racing the other writer
    print(games.generator_pid(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the helper must notice and exit
    """)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*/*/tw-*"))}


def test_games_are_deterministic_and_the_cache_survives_concurrent_writers(tmp_path):
    shared, alone, private = tmp_path / "shared", tmp_path / "alone", tmp_path / "private"
    seeds = (game_seed("valid", 0), game_seed("valid", 1))
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(pilot_envs.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "pilot_envs.textworld.generate", "--challenge", "treasure_hunter", "--level", "1",
           "--split", "valid", "--count", "2", "--cache-dir", str(shared)]
    procs = [subprocess.Popen(cli, env={**base, "PYTHONHASHSEED": "1"}, stderr=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, "-c", _GENERATE_AND_DIE, str(shared), str(private), str(seeds[1])],
                              env={**base, "PYTHONHASHSEED": "2"}, stdout=subprocess.PIPE, text=True)]
    for seed in seeds:  # the same two games, made by this process alone, into another cache
        ensure_game(GameSpec("treasure_hunter", (("level", 1),), seed, "valid"), alone)
    assert procs[0].wait(timeout=600) == 0
    helper = int(procs[1].stdout.read().split()[0])
    assert procs[1].wait(timeout=600) == -signal.SIGKILL
    files = _digest(shared)
    assert len(files) == 6 and files == _digest(alone)  # same bytes (.z8, .json, .sha256) whatever hash seed and writer
    assert _digest(private).items() <= files.items()
    assert not [p for p in shared.rglob("*") if p.name.startswith(".")]  # no temporary leftovers
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helper), "the generator helper of a killed process must exit"


def test_generator_helper_is_closed(tmp_path):
    ensure_game(GameSpec("treasure_hunter", (("level", 1),), game_seed("test", 0), "test"), tmp_path)
    pid = games.generator_pid()
    assert pid is not None and _alive(pid)
    games.close_generator()
    assert games.generator_pid() is None and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_seed_without_quest_falls_back_to_the_next_seed(tw_cache):
    """TextWorld's generator gives up on some seeds ("try a different seed"): the split index moves on to its
    next seed, and the failure is remembered in the cache."""
    spec, path = games.find_game("treasure_hunter", {"level": 10}, "train", 0)  # seed attempt 0 has no quest
    assert spec.seed == game_seed("train", 0, attempt=1) and path.exists()
    assert list(path.parent.glob("*.noquest"))
    env = gym.make(ENV_ID, challenge="treasure_hunter", level=10)
    _, info = env.reset(seed=0, options={"split": "train", "task_index": 0})
    assert info["expert_plan"]
    with pytest.raises(games.NoQuestError):
        env.reset(seed=0, options={"game_seed": game_seed("train", 0)})
    env.close()


def test_task_index_needs_a_split():
    env = gym.make(ENV_ID, **SMALL)
    with pytest.raises(ValueError, match=r"options\['task_index'\] needs options\['split'\] \(train, valid or test\)"):
        env.reset(seed=0, options={"task_index": 3})
    env.close()


# ---------------------------------------------------------------------------------------------- damaged caches
_RESET_ONCE = textwrap.dedent("""
    import sys, gymnasium as gym, pilot_envs
    if "PilotTextWorld-v0" not in gym.registry:
        gym.register("PilotTextWorld-v0", entry_point="pilot_envs.textworld.env:PilotTextWorldEnv")
    env = gym.make("PilotTextWorld-v0", challenge="treasure_hunter", level=1, cache_dir=sys.argv[1])
    obs, info = env.reset(seed=0, options={"split": "test", "task_index": 0})
    print("expert:", info["expert_action"], flush=True)
    """)


def _spec(split: str = "test", index: int = 0) -> GameSpec:
    return GameSpec("treasure_hunter", (("level", 1),), game_seed(split, index), split)


def test_a_damaged_cached_game_is_made_again_instead_of_killing_the_process(tmp_path):
    """Jericho exits the interpreter on a truncated story file: the cache must catch it first (in a subprocess,
    since without the check the process dies)."""
    z8 = ensure_game(_spec(), tmp_path)
    good = z8.read_bytes()
    z8.write_bytes(good[: len(good) // 2])
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(pilot_envs.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _RESET_ONCE, str(tmp_path)], env=base, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "expert:" in out.stdout, out.stderr[-2000:]
    assert z8.read_bytes() == good and z8.with_suffix(".sha256").exists()


def test_caches_without_checksums_are_verified_and_stale_temporaries_removed(tmp_path):
    z8 = ensure_game(_spec(), tmp_path)
    folder, good, digest = z8.parent, z8.read_bytes(), z8.with_suffix(".sha256")
    # an entry written before checksums existed: checked by the story file's own header, then given a checksum
    digest.unlink(missing_ok=True)
    mtime = z8.stat().st_mtime_ns
    assert ensure_game(_spec(), tmp_path) == z8 and digest.exists() and z8.stat().st_mtime_ns == mtime
    # temporary directories of writers that died: a dead pid on this host, or untouched for long; others are kept
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = games._host()
    stale = [folder / f".tmp-{dead.pid}@{host}-abc", folder / ".tmp-legacy1"]
    kept = [folder / f".tmp-{os.getpid()}@{host}-def", folder / ".tmp-legacy2", folder / f".tmp-{dead.pid}@elsewhere-x"]
    for path in stale + kept:
        path.mkdir()
        (path / "game.z8").write_bytes(b"partial")
    old = time.time() - games.STALE_TMP_SECONDS - 60
    os.utime(stale[1], (old, old))
    # a damaged entry without a checksum is made again (which first clears what dead writers left)
    digest.unlink(missing_ok=True)
    z8.write_bytes(good[:-1000])
    assert ensure_game(_spec(), tmp_path) == z8 and z8.read_bytes() == good and digest.exists()
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


_STEP_ONCE = """
import sys
import gymnasium as gym
import pilot_envs  # noqa: F401
env = gym.make("PilotTextWorld-v0", cache_dir=sys.argv[1], split_sizes={"train": 1, "valid": 0, "test": 0},
               level=1)
env.reset(seed=0)
obs, _, _, _, info = env.step(sys.argv[2])
print("answer:", repr(obs["text"]), info["action_valid"])
"""


def test_non_ascii_input_never_reaches_the_z_machine(tmp_path):
    """This input (found by the registry fuzz test, lower-cased by the parser) made Jericho's frotz loop forever
    inside ``step``. Run in a subprocess so a regression fails on a timeout instead of hanging the suite."""
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(pilot_envs.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    text = "\\woò\xadyã´ñê9\U000fe650{"
    out = subprocess.run([sys.executable, "-c", _STEP_ONCE, str(tmp_path), text], env=base, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"answer: {NOTHING_HAPPENS!r} False" in out.stdout


@pytest.mark.parametrize("command", ["transcript", "look. transcript", "look then script", "look, recording on",
                                     "replay", "wait. restart"])
def test_meta_commands_are_refused_anywhere_in_the_input(tw_cache, tmp_path, monkeypatch, command):
    """Inform runs several commands from one line; a transcript or command recording would write a file into the
    working directory (the registry fuzz test once left a ``transcripts`` file in the checkout)."""
    monkeypatch.chdir(tmp_path)
    env = gym.make(ENV_ID, **SMALL)
    _, info = env.reset(seed=0, options={"split": "train", "task_index": 0})
    obs, _, _, _, after = env.step(command)
    assert obs["text"] == NOTHING_HAPPENS and not after["action_valid"] and after["state_hash"] == info["state_hash"]
    env.step("look")
    env.close()
    assert list(tmp_path.iterdir()) == []
