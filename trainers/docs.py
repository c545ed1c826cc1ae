"""Keep the config tables of docs/trainers/*.md in step with the config dataclasses.

Each page holds its table between ``<!-- config:start -->`` and ``<!-- config:end -->``; :data:`PAGES` says which
config it shows and, for methods built on another config, which parent's fields it leaves out (only the fields the
method adds or changes are listed). ``python -m trainers.docs`` rewrites the tables; ``--check`` exits 1 when
one is stale (tests/trainers/test_cli.py runs the check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainers.core.cli import TRAINERS, config_table, load_entry

__all__ = ["PAGES", "render_page", "update_pages"]

START, END = "<!-- config:start -->", "<!-- config:end -->"
PAGES: dict[str, tuple[str, str | None]] = {
    "grpo.md": ("grpo", None),
    "ppo.md": ("ppo", None),
    "pilotrl.md": ("pilotrl", "trainers.core.config:TrainerConfig"),
    "hiper.md": ("hiper", "trainers.ppo.config:PPOConfig"),
    "epo.md": ("epo", "trainers.ppo.config:PPOConfig"),
}
"""Page (in docs/trainers/) -> (method, parent config whose unchanged fields are omitted, or None for all)."""


def render_page(text: str, method: str, base: str | None) -> str:
    """``text`` with the table between the markers regenerated."""
    if START not in text or END not in text:
        raise ValueError(f"page of {method!r} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = config_table(load_entry(TRAINERS[method][0]), load_entry(base) if base else None)
    return f"{head}{START}\n{table}\n{END}{tail}"


def update_pages(root: Path, check: bool = False) -> list[str]:
    """Rewrite (or with ``check`` only compare) every page; returns the names of stale pages."""
    stale = []
    for name, (method, base) in PAGES.items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        new = render_page(text, method, base)
        if new != text:
            stale.append(name)
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "docs" / "trainers"))
    p.add_argument("--check", action="store_true", help="exit 1 if a table is stale; write nothing")
    a = p.parse_args(argv)
    stale = update_pages(Path(a.root), check=a.check)
    for name in stale:
        print(("stale: " if a.check else "updated: ") + name)
    return 1 if (a.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
