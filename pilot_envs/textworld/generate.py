"""Make TextWorld games: the helper process behind the game cache, and a command to fill the cache ahead of time.

    python -m pilot_envs.textworld.generate --challenge cooking --settings '{"recipe": 2, "go": 6}' --split train
    python -m pilot_envs.textworld.generate --challenge treasure_hunter --level 10 --split valid --count 20

generates the games of a split (all, or the first ``--count``) into the cache the env reads
(``--cache-dir``, default ``$PILOT_ENVS_CACHE_DIR`` or ``~/.cache/pilot-envs``). ``--serve`` is the helper mode
used by :mod:`pilot_envs.textworld.games` (one JSON request per line on stdin, one JSON reply per line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

__all__ = ["build_game", "main"]

_TW_NAMES = {"coin_collector": "tw-coin_collector", "treasure_hunter": "tw-treasure_hunter",
             "cooking": "tw-cooking", "simple": "tw-simple"}


def build_game(challenge: str, settings: dict[str, Any], seed: int, out: str) -> str:
    """Generate one game with TextWorld's generator and compile it to ``out`` (a ``.z8`` path)."""
    import textworld
    from textworld.challenges import CHALLENGES
    from textworld.generator.game import GameOptions

    options = GameOptions()
    options.seeds = seed
    options.path = out
    options.force_recompile = True
    if challenge == "custom":
        options.nb_rooms = settings["nb_rooms"]
        options.nb_objects = settings["nb_objects"]
        options.quest_length = settings["quest_length"]
        options.quest_breadth = settings["quest_breadth"]
        game = textworld.generator.make_game(options)
    else:
        game = CHALLENGES[_TW_NAMES[challenge]][1](settings, options)
    return textworld.generator.compile_game(game, options)


def serve() -> int:
    """Answer generation requests until stdin closes (the parent exited)."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever TextWorld prints must not corrupt the replies
    for line in sys.stdin:
        try:
            request = json.loads(line)
            build_game(request["challenge"], request["settings"], request["seed"], request["out"])
            reply = {"ok": True}
        except Exception as exc:  # reported to the parent, which raises GenerationError / NoQuestError
            reply = {"ok": False, "kind": type(exc).__name__, "error": traceback.format_exc(limit=5)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilot_envs.textworld.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--challenge", default="treasure_hunter")
    parser.add_argument("--level", type=int, default=None)
    parser.add_argument("--settings", default=None, help="JSON object of generator settings")
    parser.add_argument("--split", default="train", choices=("train", "valid", "test"))
    parser.add_argument("--count", type=int, default=None, help="only the first COUNT games of the split")
    parser.add_argument("--split-sizes", default=None, help='JSON, e.g. {"train": 100, "valid": 20, "test": 20}')
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    from tqdm import tqdm

    from pilot_envs.textworld.games import DEFAULT_SPLIT_SIZES, find_game, make_settings

    settings = make_settings(args.challenge, args.level, json.loads(args.settings) if args.settings else None)
    sizes = {**DEFAULT_SPLIT_SIZES, **(json.loads(args.split_sizes) if args.split_sizes else {})}
    count = sizes[args.split] if args.count is None else min(args.count, sizes[args.split])
    for index in tqdm(range(count), desc=f"{args.challenge} {args.split}", unit="game"):
        find_game(args.challenge, settings, args.split, index, args.cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
