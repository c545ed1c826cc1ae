"""RemoteEnv is a Gymnasium env (check_env, gym.make, equal spaces, the text-env contract) that fails clearly when
its server is unreachable or dies mid-episode; ``pilot-envs serve``'s command line."""

from __future__ import annotations

import argparse
import socket
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from serve_helpers import spawn

from pilot_envs.core.contract import TextEnv, text_env
from pilot_envs.remote import RemoteEnv, RemoteEnvError, base_url
from pilot_envs.serve.cli import add_parser, parse_kwargs, run


def test_check_env_passes(small_url):
    env = RemoteEnv(small_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env's warnings count as failures here
        check_env(env, skip_render_check=True)
    env.close()


def test_gym_make_spaces_and_contract(full_url):
    env = gym.make("PilotRemote-v0", url=full_url.replace("http://", "ws://") + "/ws/")
    local = gym.make("PilotALFWorld-v0", plan_mode="oracle")
    assert env.observation_space == local.observation_space and env.action_space == local.action_space
    assert env.spec.id == "PilotRemote-v0" and env.unwrapped.max_episode_steps == 50
    base = text_env(env)
    assert isinstance(base, TextEnv) and base.plan_mode == "oracle" and base.domain == text_env(local).domain
    assert base.splits() == text_env(local).splits() and base.noop_action == text_env(local).noop_action
    base.set_plan_mode("oracle")
    with pytest.raises(ValueError, match="--kwarg plan_mode=agent"):
        base.set_plan_mode("agent")
    env.close()


def test_unreachable_server_is_a_clear_connection_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteEnvError, match=f"cannot reach the pilot-envs server at http://127.0.0.1:{port}"):
        gym.make("PilotRemote-v0", url=f"127.0.0.1:{port}", timeout_s=5)
    with pytest.raises(ValueError, match="not a server URL"):
        base_url("ftp://example")


def test_server_killed_mid_episode_raises_a_clear_error():
    proc, url = spawn("PilotALFWorldSmall-v0", "--max-sessions", "2")
    try:
        env = gym.make("PilotRemote-v0", url=url, timeout_s=10)
        obs, info = env.reset(seed=0)
        env.step(info["expert_action"])
        proc.kill()
        proc.wait(10)
        with pytest.raises(RemoteEnvError, match=f"lost the connection to the pilot-envs server at {url}"):
            env.step("look")
        with pytest.raises(RemoteEnvError, match=f"cannot open a session at ws://{url[7:]}/ws"):
            env.reset()  # reconnecting to a dead server says so too
        assert isinstance(RemoteEnvError("x"), ConnectionError)
    finally:
        proc.kill()
        proc.wait(10)


def test_cli_arguments_and_errors(capsys):
    parser = argparse.ArgumentParser(prog="pilot-envs")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "PilotALFWorldSmall-v0", "--port", "0", "--max-sessions", "3",
                              "--idle-timeout", "0", "--kwarg", "plan_mode=oracle", "--kwarg", "max_objects=5"])
    assert (args.fn, args.max_sessions, args.idle_timeout, args.host) == (run, 3, None, "127.0.0.1")
    assert parse_kwargs(args.kwarg) == {"plan_mode": "oracle", "max_objects": 5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_kwargs(["oops"])
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "X", "--max-sessions", "0"])
    assert run(parser.parse_args(["serve", "NoSuchEnv-v0", "--port", "0"])) == 2
    assert "unknown env id 'NoSuchEnv-v0'" in capsys.readouterr().err
    assert run(parser.parse_args(["serve", "PilotALFWorldSmall-v0", "--port", "0", "--kwarg", "reward_mode=x"])) == 2
    assert "reward_mode" in capsys.readouterr().err
