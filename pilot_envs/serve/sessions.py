"""Stateful HTTP sessions (``/sessions``) beside OpenEnv's WebSocket sessions, for clients that speak plain HTTP
(AgentGym-style). OpenEnv's own HTTP ``/reset`` and ``/step`` are stateless (a fresh env per request), so an
episode over HTTP needs a session id.

The sessions live in the same table as the WebSocket sessions of OpenEnv's ``HTTPEnvServer`` (one limit, one
idle reaper, one thread per session); this module uses that server's session methods, the ones its own HTTP
MCP sessions use (openenv-core 0.3, pinned below 0.4 in the ``[serve]`` extra).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from openenv.core import HTTPEnvServer, SessionCapacityError, serialize_observation
from pydantic import BaseModel, ConfigDict, Field

from pilot_envs.serve.environment import PilotAction, PilotEnvironment
from pilot_envs.serve.errors import RequestError, ServerFull

__all__ = ["SessionReset", "SessionStep", "add_session_routes"]


class UnknownSession(RequestError):
    status = 404


class SessionReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(default=None, ge=0, strict=True, description="seed of the episode (null: continue)")
    options: dict[str, Any] | None = Field(default=None, description='e.g. {"split": "valid_seen", "task_index": 0}')
    episode_id: str | None = Field(default=None, max_length=255)


class SessionStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: PilotAction


def add_session_routes(app: FastAPI, server: HTTPEnvServer, idle_timeout_s: float | None) -> None:
    """``POST /sessions`` -> ``{"session_id"}``; ``POST /sessions/{id}/reset`` and ``/step`` answer like
    OpenEnv's ``/reset`` and ``/step``; ``GET /sessions/{id}/state``; ``DELETE /sessions/{id}``."""
    reaped = f"or was reaped after {idle_timeout_s:g} s idle" if idle_timeout_s else "(this server never reaps)"
    wait = f"or wait for idle ones to be reaped (after {idle_timeout_s:g} s)" if idle_timeout_s else ""

    def session_env(session_id: str) -> PilotEnvironment:
        env = server._sessions.get(session_id)
        if env is None:  # unknown, closed, reaped, or (for an instant) still being created
            raise UnknownSession(f"unknown session id {session_id!r}: it was never created, was closed {reaped}; "
                                 "create one with POST /sessions")
        return env

    @app.post("/sessions", status_code=201, tags=["Sessions"], summary="Open a stateful HTTP session")
    async def create_session() -> dict[str, str]:
        try:
            session_id, _ = await server._create_session()
        except SessionCapacityError as e:
            raise ServerFull(f"{e} Close a session (DELETE /sessions/{{id}} or close its WebSocket) {wait}".rstrip()
                             + ".") from e
        return {"session_id": session_id}

    @app.post("/sessions/{session_id}/reset", tags=["Sessions"], summary="Start an episode in a session")
    async def reset_session(session_id: str, request: SessionReset | None = None) -> dict[str, Any]:
        env = session_env(session_id)
        kwargs = (request or SessionReset()).model_dump(exclude_none=True)
        obs = await server._run_in_session_executor(session_id, env.reset, **kwargs)
        server._update_session_activity(session_id)
        return serialize_observation(obs)

    @app.post("/sessions/{session_id}/step", tags=["Sessions"], summary="Take one action in a session")
    async def step_session(session_id: str, request: SessionStep) -> dict[str, Any]:
        env = session_env(session_id)
        obs = await server._run_in_session_executor(session_id, env.step, request.action)
        server._update_session_activity(session_id, increment_step=True)
        return serialize_observation(obs)

    @app.get("/sessions/{session_id}/state", tags=["Sessions"], summary="The session's episode state")
    async def session_state(session_id: str) -> dict[str, Any]:
        return session_env(session_id).state.model_dump()

    @app.delete("/sessions/{session_id}", tags=["Sessions"], summary="Close a session")
    async def close_session(session_id: str) -> dict[str, Any]:
        session_env(session_id)
        await server._destroy_session(session_id)
        return {"session_id": session_id, "closed": True}
