"""Transcripts record what a replay needs, and ``pilot-envs replay`` reports identical or the first divergence."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from pilot_envs.cli import main
from pilot_envs.replay import TranscriptRecorder, replay_episode, write_transcripts


def _eval_transcripts(tmp_path, limit: int = 3) -> tuple[str, list[dict]]:
    path = tmp_path / "eval.jsonl"
    assert main(["eval", "PilotALFWorldSmall-v0", "--limit", str(limit), "--quiet", "--agent", "random",
                 "--transcripts", str(path)]) == 0
    return str(path), [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_transcripts_replay_identically(tmp_path, capsys):
    path, records = _eval_transcripts(tmp_path)
    assert len(records) == 3 and all(r["env"]["id"] == "PilotALFWorldSmall-v0" and r["turns"] for r in records)
    capsys.readouterr()
    assert main(["replay", path]) == 0
    assert "3 identical, 0 diverged, 0 could not be replayed" in capsys.readouterr().out


@pytest.mark.parametrize(("field", "change"), [("reward", lambda v: v + 0.5), ("observation", lambda v: v + "!"),
                                               ("action", lambda v: "look" if v != "look" else "inventory"),
                                               ("state_hash", lambda v: "0" * 16)])
def test_a_changed_transcript_reports_its_first_divergence(tmp_path, capsys, field, change):
    path, records = _eval_transcripts(tmp_path, limit=1)
    turn = records[0]["turns"][1]
    turn[field] = change(turn[field])
    write_transcripts(path, records)
    capsys.readouterr()
    assert main(["replay", path]) == 1
    out = capsys.readouterr().out
    assert "DIVERGED at turn" in out and "0 identical, 1 diverged" in out
    if field != "action":  # a changed action shows up in what follows it
        assert f"turn 2: {field} expected" in out


def test_an_unseeded_episode_replays_from_its_start_snapshot(tmp_path):
    env = TranscriptRecorder(gym.make("PilotALFWorldSmall-v0"))
    env.reset(seed=4)
    env.reset()  # no seed: the task comes from the generator's state, so the start is a snapshot
    obs, info = env.reset()
    for _ in range(4):
        obs, *_, info = env.step(info["expert_action"])
    record = env.episodes[-1]
    assert record["seed"] is None and record["start"] is not None
    assert replay_episode(json.loads(json.dumps(record))) is None


@pytest.mark.parametrize("content", ["not json\n", "[1, 2]\n", json.dumps({"turns": []}) + "\n",
                                     json.dumps({"env": {"id": "NoSuchEnv-v0", "version": "0.1.0"}, "turns": []})
                                     + "\n", json.dumps({"format": "other/9", "turns": []}) + "\n"])
def test_bad_transcripts_are_clear_errors(tmp_path, capsys, content):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code = main(["replay", str(path)])
    captured = capsys.readouterr()
    assert code in (1, 2)
    assert "Traceback" not in captured.err
    assert ("cannot replay" in captured.out) or ("error" in captured.err)


def test_a_missing_transcript_is_a_clear_error(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such transcript" in capsys.readouterr().err
