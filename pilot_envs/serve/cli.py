"""The ``serve`` subcommand: ``pilot-envs serve ENV_ID [--host H] [--port P] [--max-sessions N]
[--idle-timeout S] [--kwarg KEY=VALUE ...]``. Imports the server only when run (it needs the ``[serve]`` extra)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "add_arguments", "parse_kwargs", "run"]


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["max_receptacles=6", "plan_mode=oracle"]`` -> ``{"max_receptacles": 6, "plan_mode": "oracle"}``: each
    value is read as JSON, and taken as a plain string when it is not JSON."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--kwarg expects KEY=VALUE with KEY a Python name, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _idle_timeout(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds (0: never), got {text}")
    return value or None


def _sessions(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("env_id", help="a registered env id (pilot-envs list)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: a free one, printed at start)")
    p.add_argument("--max-sessions", type=_sessions, default=64, help="open sessions at most (default 64)")
    p.add_argument("--idle-timeout", type=_idle_timeout, default=600.0,
                   help="close a session idle this many seconds (default 600; 0: never)")
    p.add_argument("--kwarg", action="append", metavar="KEY=VALUE",
                   help="a gym.make keyword argument, VALUE read as JSON (repeatable): --kwarg plan_mode=oracle")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    try:
        from pilot_envs.serve.app import serve
    except ImportError as e:
        print(f"pilot-envs serve: needs the [serve] extra ({e}): pip install 'pilot-envs[serve]'", file=sys.stderr)
        return 2
    try:
        kwargs = parse_kwargs(args.kwarg)
        serve(args.env_id, args.host, args.port, max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
              log_level=args.log_level, **kwargs)
    except (ValueError, TypeError, OSError) as e:  # unknown id, bad kwargs, port in use
        print(f"pilot-envs serve: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to a ``pilot-envs`` subparsers object."""
    p = subparsers.add_parser("serve", help="serve an env id over the OpenEnv protocol (HTTP + WebSocket sessions)",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(fn=run)
    return p
