"""Bad input gets a 4xx (HTTP) or an error response (WebSocket) with a clear message; the server stays up and
a session playing beside the bad requests is unaffected."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import requests
from serve_helpers import assert_same, mixed_policy, play_on, transcript
from websockets.sync.client import connect

from pilot_envs.remote import RemoteEnv, RemoteRequestError

MB = "x" * (1 << 20)


def _post(url: str, path: str, body=None, raw: bytes | None = None) -> requests.Response:
    if raw is not None:
        return requests.post(url + path, data=raw, headers={"content-type": "application/json"}, timeout=10)
    return requests.post(url + path, json=body, timeout=10)


UNKNOWN = "no-such-id"  # a session id the server never gave out


def _http_cases(url: str, sid: str) -> list[tuple[str, requests.Response, int, str]]:
    fresh = requests.post(f"{url}/sessions", timeout=10).json()["session_id"]
    cases = [
        ("malformed JSON", _post(url, f"/sessions/{sid}/step", raw=b'{"action": {"text": "look"'), 422, "JSON"),
        ("malformed JSON, OpenEnv route", _post(url, "/step", raw=b"{not json"), 422, "JSON"),
        ("unknown session", _post(url, f"/sessions/{UNKNOWN}/step", {"action": {"text": "look"}}), 404,
         f"unknown session id '{UNKNOWN}'"),
        ("unknown session, reset", _post(url, f"/sessions/{UNKNOWN}/reset", {}), 404, "POST /sessions"),
        ("1 MB action", _post(url, f"/sessions/{sid}/step", {"action": {"text": MB}}), 413, "at most 65,536"),
        ("5 MB body", _post(url, f"/sessions/{sid}/step", {"action": {"text": MB * 5}}), 413, "at most 4,194,304"),
        ("action not a string", _post(url, f"/sessions/{sid}/step", {"action": {"text": 3}}), 422, "valid string"),
        ("action missing", _post(url, f"/sessions/{sid}/step", {"action": {}}), 422, "Field required"),
        ("unknown action field", _post(url, f"/sessions/{sid}/step", {"action": {"text": "a", "x": 1}}), 422,
         "Extra inputs"),
        ("seed a string", _post(url, f"/sessions/{sid}/reset", {"seed": "3"}), 422, "valid integer"),
        ("seed negative", _post(url, f"/sessions/{sid}/reset", {"seed": -1}), 422, "greater than or equal"),
        ("options a list", _post(url, f"/sessions/{sid}/reset", {"options": [1]}), 422, "valid dictionary"),
        ("unknown split", _post(url, f"/sessions/{sid}/reset", {"options": {"split": "nope"}}), 422,
         "unknown split 'nope'"),
        ("task index out of range", _post(url, f"/sessions/{sid}/reset",
                                          {"options": {"split": "valid_seen", "task_index": 10**6}}), 422, "out of range"),
        ("unknown reset parameter, OpenEnv route", _post(url, "/reset", {"sed": 3}), 422, "unknown reset parameter"),
        ("step before reset", _post(url, f"/sessions/{fresh}/step", {"action": {"text": "look"}}), 409,
         "step before reset"),
        ("step on OpenEnv's stateless route", _post(url, "/step", {"action": {"text": "look"}}), 409, "stateless"),
    ]
    requests.delete(f"{url}/sessions/{fresh}", timeout=10)
    return cases


def test_http_bad_input_is_a_clear_4xx_and_harms_no_one(small_url):
    bystander, local = gym.make("PilotRemote-v0", url=small_url), gym.make("PilotALFWorldSmall-v0")
    policy, local_policy = mixed_policy(5), mixed_policy(5)
    before = transcript(bystander, seed=21, actions=policy, steps=10)
    sid = requests.post(f"{small_url}/sessions", timeout=10).json()["session_id"]
    _post(small_url, f"/sessions/{sid}/reset", {"seed": 1})
    for name, response, status, words in _http_cases(small_url, sid):
        assert response.status_code == status, (name, response.status_code, response.text[:300])
        assert words in response.text, (name, response.text[:300])
        assert len(response.content) < 20_000, name  # no megabyte echoed back
    # the session that received all of it still plays, from where it was
    ok = _post(small_url, f"/sessions/{sid}/step", {"action": {"text": "look"}})
    assert ok.status_code == 200 and ok.json()["observation"]["info"]["task_id"]
    assert requests.get(f"{small_url}/health", timeout=10).status_code == 200
    after = [(a, *rest) for a, *rest in _continue(bystander, before, policy, 10)]
    expected = transcript(local, seed=21, actions=local_policy, steps=10)
    expected += _continue(local, expected, local_policy, 10)
    assert_same(before + after, expected)
    bystander.close()


def _continue(env, steps, policy, n):
    """``n`` more steps of an episode whose transcript so far is ``steps``."""
    return play_on(env, steps[-1][1], steps[-1][-1], policy, n)


def test_websocket_bad_input_answers_errors_and_keeps_the_session(small_url):
    ws_url = small_url.replace("http", "ws") + "/ws"
    with connect(ws_url, max_size=None) as ws:
        def ask(message: str | dict) -> dict:
            ws.send(message if isinstance(message, str) else json.dumps(message))
            return json.loads(ws.recv(timeout=10))

        cases = [
            ("{not json", "INVALID_JSON", "Invalid JSON"),
            ({"type": "teleport"}, "UNKNOWN_TYPE", "Unknown message type"),
            ({"type": "step", "data": {"text": "look"}}, "EXECUTION_ERROR", "step before reset"),
            ({"type": "reset", "data": {"seed": "x"}}, "EXECUTION_ERROR", "seed must be a non-negative integer"),
            ({"type": "reset", "data": {"options": "valid_seen"}}, "EXECUTION_ERROR", "options must be an object"),
            ({"type": "reset", "data": {"speed": 1}}, "EXECUTION_ERROR", "unknown reset parameter"),
        ]
        for message, code, words in cases:
            answer = ask(message)
            assert answer["type"] == "error" and answer["data"]["code"] == code, (message, answer)
            assert words in answer["data"]["message"], (message, answer)
        assert ask({"type": "reset", "data": {"seed": 4}})["type"] == "observation"
        for message, words in [({"type": "step", "data": {"text": MB}}, "ActionTooLarge (413)"),
                               ({"type": "step", "data": {"text": 7}}, "Invalid message"),
                               ({"type": "step", "data": {}}, "Invalid message")]:
            answer = ask(message)
            assert answer["type"] == "error" and words in answer["data"]["message"], answer
            assert len(json.dumps(answer)) < 20_000
        step = ask({"type": "step", "data": {"text": "look"}})  # the episode goes on
        local = gym.make("PilotALFWorldSmall-v0")
        local.reset(seed=4)
        assert step["data"]["observation"]["text"] == local.step("look")[0]["text"]


def test_remote_env_maps_errors_to_python_exceptions(small_url):
    env = RemoteEnv(small_url)  # unwrapped: the server's answers, not Gymnasium's wrappers
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        env.step("look")  # no session yet
    with pytest.raises(RemoteRequestError, match="unknown split 'nope'"):
        env.reset(options={"split": "nope"})  # refused by the server, on the session this opened
    with pytest.raises(gym.error.ResetNeeded, match="step before reset"):
        env.step("look")  # the session exists, its episode does not
    first, _ = env.reset(seed=0)
    with pytest.raises(RemoteRequestError, match="at most 65,536"):
        env.step(MB)
    with pytest.raises(TypeError, match="actions are text"):
        env.step(3)
    local = gym.make("PilotALFWorldSmall-v0")
    assert first["text"] == local.reset(seed=0)[0]["text"]
    assert env.step("look")[0]["text"] == local.step("look")[0]["text"]  # still the same episode
    env.close()


def test_first_reset_refused_then_an_episode_plays(small_url):
    """A refused first reset leaves the session usable (Gymnasium 1.4's env checker would break it otherwise)."""
    env = gym.make("PilotRemote-v0", url=small_url)
    with pytest.raises(RemoteRequestError):
        env.unwrapped.reset(options={"task_index": -1, "split": "train"})
    env.unwrapped.reset(seed=0)
    assert env.unwrapped.step("look")[0]["text"]
    env.close()
