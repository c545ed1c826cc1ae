"""``pilot-envs serve``: any registered env id behind the OpenEnv server protocol (HTTP + WebSocket sessions).

Needs the ``[serve]`` extra (openenv-core, FastAPI, uvicorn, websockets). The client is
:class:`pilot_envs.remote.RemoteEnv` (``gym.make("PilotRemote-v0", url=...)``); docs/serving.md has the protocol.
Importing this package imports neither FastAPI nor openenv; :func:`create_app` and :func:`serve` do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(env_id: str, **kwargs: Any) -> Any:
    """See :func:`pilot_envs.serve.app.create_app`."""
    from pilot_envs.serve.app import create_app as _create_app

    return _create_app(env_id, **kwargs)


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """See :func:`pilot_envs.serve.app.serve`."""
    from pilot_envs.serve.app import serve as _serve

    _serve(env_id, host, port, **kwargs)
