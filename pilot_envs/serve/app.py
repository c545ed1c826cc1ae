"""The server: any registered env id behind the OpenEnv protocol, built with openenv-core's ``HTTPEnvServer``.

Routes (docs/serving.md has the messages and the observation JSON):

* OpenEnv's: ``GET /health``, ``GET /schema``, ``GET /metadata``, ``GET /state``, ``POST /reset``, ``POST /step``
  (stateless: a fresh env per request) and the WebSocket session endpoint ``/ws`` (one env per connection);
* ours: ``GET /env`` (the gym spaces, episode limit and contract of the served env, what
  :class:`pilot_envs.remote.RemoteEnv` builds itself from) and stateful HTTP sessions under ``/sessions``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from typing import Any

import gymnasium as gym
from fastapi import FastAPI, Request, WebSocketDisconnect
from fastapi.responses import JSONResponse
from openenv.core import ConcurrencyConfig, HTTPEnvServer

from pilot_envs.core.contract import INFO_KEYS
from pilot_envs.serve.environment import MAX_WIRE_ACTION_CHARS, PilotAction, PilotEnvironment, PilotObservation
from pilot_envs.serve.errors import RequestError
from pilot_envs.serve.sessions import add_session_routes
from pilot_envs.serve.wire import space_to_json, to_json

__all__ = ["create_app", "serve", "env_description", "MAX_MESSAGE_BYTES", "DEFAULT_MAX_SESSIONS",
           "DEFAULT_IDLE_TIMEOUT_S"]

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The largest HTTP body or WebSocket message the server reads (larger: HTTP 413, WebSocket close 1009)."""
DEFAULT_MAX_SESSIONS = 64
DEFAULT_IDLE_TIMEOUT_S = 600.0


def env_description(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /env`` answers: made from one instance of the env (which checks the id and kwargs)."""
    if env_id not in gym.registry:
        pilot = sorted(i for i in gym.registry if i.startswith("Pilot") and i != "PilotRemote-v0")
        raise ValueError(f"unknown env id {env_id!r}; registered: {', '.join(pilot)}")
    env = gym.make(env_id, **env_kwargs)
    try:
        base = env.unwrapped
        splits = base.splits() if callable(getattr(base, "splits", None)) else {}
        return {
            "env_id": env_id,
            "env_kwargs": to_json(env_kwargs),
            "observation_space": space_to_json(env.observation_space),
            "action_space": space_to_json(env.action_space),
            "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
            "info_keys": list(INFO_KEYS),
            "domain": getattr(base, "domain", None),
            "noop_action": getattr(base, "noop_action", None),
            "plan_mode": getattr(base, "plan_mode", None),
            "splits": to_json(splits),
            "max_action_chars": MAX_WIRE_ACTION_CHARS,
        }
    finally:
        env.close()


def create_app(env_id: str, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
               idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S, **env_kwargs: Any) -> FastAPI:
    """A FastAPI app serving ``gym.make(env_id, **env_kwargs)``, one instance per session.

    ``max_sessions`` bounds the open sessions (WebSocket and HTTP together; one more is refused with a clear
    error); a session idle for ``idle_timeout_s`` seconds is closed (``None``: never). OpenEnv's reaper looks
    every ``max(idle_timeout_s / 4, 5)`` seconds, so a session goes that much later at most.
    """
    if type(max_sessions) is not int or max_sessions < 1:
        raise ValueError(f"max_sessions must be a whole number >= 1, got {max_sessions!r}")
    if idle_timeout_s is not None and not idle_timeout_s > 0:
        raise ValueError(f"idle_timeout_s must be > 0 seconds or None (never), got {idle_timeout_s!r}")
    description = env_description(env_id, env_kwargs)
    description.update(max_sessions=max_sessions, idle_timeout_s=idle_timeout_s)
    server = HTTPEnvServer(
        functools.partial(PilotEnvironment, env_id, env_kwargs), PilotAction, PilotObservation,
        concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=idle_timeout_s),
    )
    app = FastAPI(title=f"pilot-envs serve {env_id}",
                  description="A pilot-envs environment over the OpenEnv protocol (docs/serving.md).")
    app.add_exception_handler(RequestError, _request_error)
    app.middleware("http")(_limit_body)
    app.add_middleware(_QuietDisconnect)
    server.register_routes(app)
    add_session_routes(app, server, idle_timeout_s)

    @app.get("/env", tags=["Environment Info"], summary="The served env's gym spaces and contract")
    async def env_info() -> dict[str, Any]:
        return description

    app.state.openenv_server = server
    return app


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    return JSONResponse(status_code=exc.status, content={"detail": exc.message, "error": type(exc).__name__})


async def _limit_body(request: Request, call_next: Any) -> Any:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_MESSAGE_BYTES):
        return JSONResponse(status_code=413, content={
            "detail": f"request body of {size} bytes; the server reads at most {MAX_MESSAGE_BYTES:,}",
            "error": "ActionTooLarge"})
    return await call_next(request)


class _QuietDisconnect:
    """A client that closes its WebSocket ends its session; OpenEnv's handler then closes the socket once more,
    which raises ``WebSocketDisconnect`` under uvicorn's websockets-sansio protocol and logs a traceback for an
    ordinary goodbye. This keeps that one case quiet (the session is already cleaned up)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        with contextlib.suppress(WebSocketDisconnect):
            await self.app(scope, receive, send)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one, read it with ``getsockname()``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8000, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
          idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S, log_level: str = "warning",
          **env_kwargs: Any) -> None:
    """Serve ``env_id`` with uvicorn until interrupted; prints the URL once listening (``port=0``: a free port)."""
    import uvicorn

    app = create_app(env_id, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s, **env_kwargs)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"pilot-envs serve: {env_id} on http://{shown}:{bound} (WebSocket ws://{shown}:{bound}/ws; "
          f"at most {max_sessions} sessions; idle timeout {idle_timeout_s} s)", flush=True)
    config = uvicorn.Config(app, log_level=log_level, ws_max_size=MAX_MESSAGE_BYTES, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
