"""The errors a client's request can cause, each with the HTTP status the server answers (over the WebSocket
the same message comes back as an OpenEnv error response). Anything else raised while serving is a server bug."""

from __future__ import annotations

__all__ = ["RequestError", "BadRequest", "OutOfOrder", "SessionGone", "ActionTooLarge", "ServerFull"]


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status code it answers with."""

    status = 400

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:  # what a WebSocket client reads: the kind and status first, so it can map them back
        return f"{type(self).__name__} ({self.status}): {self.message}"


class BadRequest(RequestError):
    """Well-formed JSON whose values are wrong (unknown parameters, wrong types, unknown split or task index)."""

    status = 422


class OutOfOrder(RequestError):
    """A call the session's state does not allow (a step before any reset)."""

    status = 409


class SessionGone(RequestError):
    """The session was closed (by its client, or by the server after it sat idle too long)."""

    status = 410


class ActionTooLarge(RequestError):
    """An action longer than the server reads."""

    status = 413


class ServerFull(RequestError):
    """Every session slot is taken."""

    status = 429
