"""Keep the config tables of docs/trainers/*.md in step with the config dataclasses.

Each registered method (:data:`trainers.core.registry.METHODS`) names its page and, for methods built on another
config, the parent whose unchanged fields the table leaves out (only the fields the method adds or changes are
listed). Each page holds its table between ``<!-- config:start -->`` and ``<!-- config:end -->``.
``python -m trainers.docs`` rewrites the tables; ``--check`` exits 1 when one is stale or missing
(tests/trainers/test_cli.py runs the check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainers.core.cli import config_table
from trainers.core.registry import METHODS

__all__ = ["render_page", "update_pages"]

START, END = "<!-- config:start -->", "<!-- config:end -->"


def render_page(text: str, method: str) -> str:
    """``text`` with the table of ``method`` between the markers regenerated."""
    if START not in text or END not in text:
        raise ValueError(f"page of {method!r} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    m = METHODS.get(method)
    table = config_table(m.config, m.page_base)
    return f"{head}{START}\n{table}\n{END}{tail}"


def update_pages(root: Path, check: bool = False) -> list[str]:
    """Rewrite (or with ``check`` only compare) every method's page; returns the names of stale pages. A
    registered method without its page is an error (``FileNotFoundError`` naming it)."""
    stale = []
    for method in METHODS.names():
        name = METHODS.get(method).page
        path = root / name
        if not path.exists():
            raise FileNotFoundError(f"method {method!r} has no page {path} (with a {START} ... {END} block)")
        text = path.read_text(encoding="utf-8")
        new = render_page(text, method)
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
