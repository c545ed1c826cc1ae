"""``RemoteEnv``: a Gymnasium env over a ``pilot-envs serve`` URL, so any RL code can use a served env:
``gym.make("PilotRemote-v0", url="http://127.0.0.1:8000")``.

It reads the served env's spaces from ``GET /env`` and plays over one OpenEnv WebSocket session (``/ws``), opened
at the first ``reset()``. Observations, rewards, flags and info come back as the in-process env returns them
(tuples, numpy arrays of the space's dtype), so a seeded episode through the server equals one in-process.
Errors: :class:`RemoteEnvError` (a ``ConnectionError``) when the server cannot be reached, stops answering, closes
the session (idle timeout) or is full; :class:`RemoteRequestError` (a ``ValueError``) when it refuses a request
(bad reset options, an oversized action); ``gym.error.ResetNeeded`` for a step before ``reset()``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, SupportsFloat

import gymnasium as gym

from pilot_envs.core.contract import coerce_text
from pilot_envs.serve.wire import info_from_json, obs_from_json, space_from_json

__all__ = ["RemoteEnv", "RemoteEnvError", "RemoteRequestError", "RemoteServerError", "base_url"]


class RemoteEnvError(ConnectionError):
    """The server at the env's URL cannot be reached, stopped answering, closed the session, or is full."""


class RemoteRequestError(ValueError):
    """The server refused a request as bad input (its message says why)."""


class RemoteServerError(RuntimeError):
    """The server failed while executing a request (its message says how)."""


_KIND = re.compile(r"^(\w+) \((\d{3})\): ")  # how pilot_envs.serve.errors.RequestError introduces itself


def base_url(url: str) -> str:
    """``http(s)://host:port`` from a server URL given as http(s)://, ws(s):// (with or without ``/ws``) or host:port."""
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (expected http://HOST:PORT)")
    path = parts.path.rstrip("/")
    path = path[: -len("/ws")] if path.endswith("/ws") else path
    return f"{scheme}://{parts.netloc}{path}"


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class RemoteEnv(gym.Env[dict[str, Any], str]):
    """A served pilot-envs env (``pilot-envs serve ENV_ID``) as a local Gymnasium env.

    ## Arguments
    ```python
    gym.make("PilotRemote-v0", url="http://127.0.0.1:8000", timeout_s=60.0, render_mode=None)
    ```
    ``url``: the server (``http://``, ``ws://`` or ``host:port``); ``timeout_s``: how long to wait for each answer.
    The env's own arguments (reward mode, plan mode, ...) are the server's (``pilot-envs serve ID --kwarg k=v``);
    its step limit too (the server's ``TimeLimit`` reports ``truncated``), so ``PilotRemote-v0`` adds none.

    ## Spaces, episodes, info
    Those of the served env (``observation_space`` and ``action_space`` are equal to its own). ``reset(seed=None)``
    continues the session's random stream, as in-process; a new connection (after an error) starts a fresh one.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout_s: float = 60.0, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.url = base_url(url)
        self.timeout_s = float(timeout_s)
        self.render_mode = render_mode
        self.description = self._get("/env")
        self.env_id: str = self.description["env_id"]
        self.observation_space = space_from_json(self.description["observation_space"])
        self.action_space = space_from_json(self.description["action_space"])
        self.max_episode_steps: int | None = self.description.get("max_episode_steps")
        self._ws: Any = None
        self._stack = contextlib.ExitStack()  # holds the open connection (websockets wants connect() as a context)
        self._text = ""

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        data: dict[str, Any] = {}
        if seed is not None:
            data["seed"] = int(seed)
        if options is not None:
            data["options"] = options
        if self._ws is None:
            self._connect()
        payload = self._call({"type": "reset", "data": data})
        obs, _, _, _, info = self._unpack(payload)
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        text = coerce_text(action)  # a non-text action is a TypeError here, as in-process
        if self._ws is None:
            raise gym.error.ResetNeeded(f"no session with {self.url}: call reset() first")
        return self._unpack(self._call({"type": "step", "data": {"text": text}}))

    def render(self) -> str | None:
        return self._text if self.render_mode == "ansi" else None

    def close(self) -> None:
        if self._ws is not None:  # closing the WebSocket ends the session (the server closes its env)
            self._drop()
        super().close()

    # ------------------------------------------------------------------ the text-env contract (read-only)
    @property
    def domain(self) -> str:
        return self.description.get("domain") or ""

    @property
    def noop_action(self) -> str:
        return self.description.get("noop_action") or "look"

    @property
    def plan_mode(self) -> str:
        return self.description.get("plan_mode") or "none"

    def splits(self) -> dict[str, int]:
        return dict(self.description.get("splits") or {})

    def set_plan_mode(self, mode: str) -> None:
        if mode != self.plan_mode:
            raise ValueError(f"the server at {self.url} serves plan_mode={self.plan_mode!r}; serve another with "
                             f"`pilot-envs serve {self.env_id} --kwarg plan_mode={mode}`")

    # ------------------------------------------------------------------ transport
    def _get(self, path: str) -> dict[str, Any]:
        handlers = [urllib.request.ProxyHandler({})] if _loopback(self.url) else []
        try:
            with urllib.request.build_opener(*handlers).open(self.url + path, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RemoteEnvError(f"{self.url}{path} answered HTTP {e.code}: is it a pilot-envs server "
                                 "(`pilot-envs serve ENV_ID`)?") from e
        except (urllib.error.URLError, OSError) as e:
            raise RemoteEnvError(f"cannot reach the pilot-envs server at {self.url} ({getattr(e, 'reason', e)}); "
                                 "is `pilot-envs serve ENV_ID` running there?") from e

    def _connect(self) -> None:
        from websockets.sync.client import connect

        ws_url = "ws" + self.url.removeprefix("http") + "/ws"
        try:
            self._ws = self._stack.enter_context(connect(
                ws_url, open_timeout=self.timeout_s, max_size=None, compression=None,
                proxy=None if _loopback(self.url) else True))
        except Exception as e:  # refused, reset, timed out, TLS, a bad handshake: all "cannot open a session"
            raise RemoteEnvError(f"cannot open a session at {ws_url} ({e}); is the pilot-envs server running?") from e

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        try:
            with contextlib.suppress(ConnectionClosed):  # the server may have said why it closed (at capacity)
                self._ws.send(json.dumps(message))
            answer = json.loads(self._ws.recv(timeout=self.timeout_s))
        except (ConnectionClosed, OSError) as e:
            self._drop()
            raise RemoteEnvError(f"lost the connection to the pilot-envs server at {self.url} ({e!r}) during "
                                 f"{message['type']}; the episode is gone (reset() opens a new session)") from e
        except TimeoutError as e:
            self._drop()
            raise RemoteEnvError(f"no answer from the pilot-envs server at {self.url} within {self.timeout_s:g} s "
                                 f"({message['type']}); the session is dropped (reset() opens a new one)") from e
        if answer.get("type") == "error":
            raise self._error(answer.get("data") or {})
        return answer["data"]

    def _drop(self) -> None:
        self._ws = None
        with contextlib.suppress(Exception):  # the connection may already be broken
            self._stack.close()

    def _error(self, data: dict[str, Any]) -> Exception:
        message, code = str(data.get("message", "")), data.get("code")
        m = _KIND.match(message)
        kind = m.group(1) if m else code
        where = f"the pilot-envs server at {self.url} refused: {message}"
        if kind == "OutOfOrder":
            return gym.error.ResetNeeded(where)
        if kind in ("SessionGone", "CAPACITY_REACHED"):
            self._drop()
            return RemoteEnvError(where)
        if (m and 400 <= int(m.group(2)) < 500) or code in ("VALIDATION_ERROR", "INVALID_JSON", "UNKNOWN_TYPE"):
            return RemoteRequestError(where + (f" {data['errors']}" if data.get("errors") else ""))
        return RemoteServerError(f"the pilot-envs server at {self.url} failed: {message} (code {code})")

    def _unpack(self, payload: dict[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        fields = dict(payload["observation"])
        terminated, truncated = bool(fields.pop("terminated")), bool(fields.pop("truncated"))
        info = info_from_json(fields.pop("info"))
        obs = obs_from_json(self.observation_space, fields)
        self._text = obs.get("text", "") if isinstance(obs, dict) else ""
        reward = payload.get("reward")
        return obs, float(reward) if reward is not None else 0.0, terminated, truncated, info
