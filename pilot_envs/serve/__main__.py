"""``python -m pilot_envs.serve ENV_ID ...``: the same as ``pilot-envs serve ENV_ID ...``."""

from __future__ import annotations

import argparse

from pilot_envs.serve.cli import add_arguments, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pilot_envs.serve")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
