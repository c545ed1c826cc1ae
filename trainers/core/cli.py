"""``python -m trainers <method> [--field value ...]``: a command line generated from the config dataclasses.

Every field of a method's config becomes an option (``env_kwargs`` -> ``--env-kwargs``) whose help is the
docstring under the field; types come from the annotations: ``bool`` -> ``--flag/--no-flag``, ``X | None``
accepts ``none``, ``tuple[str, ...]`` takes several values, ``dict`` takes JSON. ``--config run.json`` loads
fields from a JSON file first (the command line wins). The methods are those registered in
:data:`trainers.core.registry.METHODS` (each method's package registers itself; listing them imports every
method package, torch included); :func:`config_table` renders the same fields as the Markdown table the docs
show (``python -m trainers <method> --config-table``).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from trainers.core.registry import METHODS

__all__ = ["build_parser", "config_from_args", "config_table", "field_docs", "main"]


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field (subclasses override parents)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for a, b in itertools.pairwise(body):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(inspect.cleandoc(b.value.value).split())
    names = {f.name for f in fields(cls)}  # not class attributes (``ClassVar``)
    return {k: v for k, v in docs.items() if k in names}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return tp, False


def _parser_for(tp: Any, optional: bool) -> Any:
    base = {int: int, float: float, str: str}.get(tp)
    if typing.get_origin(tp) is dict or tp is dict:
        base = json.loads
    if base is None:
        raise TypeError(f"no command-line parser for type {tp!r}")

    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    name = getattr(inner, "__name__", str(inner)).replace("typing.", "")
    if typing.get_origin(inner) is tuple:
        name = f"tuple[{getattr(typing.get_args(inner)[0], '__name__', 'str')}, ...]"
    elif typing.get_origin(inner) is dict:
        name = "dict"
    return f"{name} | None" if optional else name


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def build_parser(config_cls: type, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one option per field of ``config_cls``."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None, help="JSON file of config fields (the command line overrides it)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    docs = field_docs(config_cls)
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        tp, optional = _unwrap_optional(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": docs.get(f.name, "").replace("%", "%%")}
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(tp) is tuple:
            elem = (typing.get_args(tp) or (str,))[0]
            parser.add_argument(flag, nargs="*", type=elem if elem in (int, float) else str, metavar="VALUE", **kwargs)
        else:
            parser.add_argument(flag, type=_parser_for(tp, optional), metavar=_type_name(hints[f.name]).upper().split()[0],
                                **kwargs)
    return parser


def config_from_args(
    config_cls: type, argv: Sequence[str] | None = None, prog: str | None = None, defaults: Mapping[str, Any] | None = None
) -> Any:
    """Parse ``argv`` into ``config_cls`` (validated by its ``__post_init__``). Field values come from
    ``defaults`` (e.g. a script's recipe), then a ``--config`` JSON file, then the command line."""
    parser = build_parser(config_cls, prog=prog)
    ns = vars(parser.parse_args(argv))
    values: dict[str, Any] = dict(defaults or {})
    path = ns.pop("config")
    show = ns.pop("print_config")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except (OSError, ValueError) as e:
            parser.error(f"--config {path}: {e}")
        if not isinstance(loaded, dict):
            parser.error(f"--config {path}: a JSON object of config fields is needed, got {type(loaded).__name__}")
        values.update(loaded)
    values.update(ns)
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        parser.error(f"unknown config fields {unknown}")
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():  # JSON and nargs give lists; tuple fields get tuples
        if isinstance(value, list) and typing.get_origin(_unwrap_optional(hints[name])[0]) is tuple:
            values[name] = tuple(value)
    try:
        config = config_cls(**values)
    except (TypeError, ValueError) as e:  # the config's own validation: a usage error, not a traceback
        parser.error(str(e))
    if show:
        print(json.dumps(config.__dict__, indent=1, default=str))
        raise SystemExit(0)
    return config


def config_table(config_cls: type, base: type | None = None) -> str:
    """A Markdown table of the config's fields: name, type, default, description. With ``base`` (a parent
    config class), only the fields ``config_cls`` adds or whose default or description it changes."""
    docs = field_docs(config_cls)
    hints = typing.get_type_hints(config_cls)
    base_fields = {f.name: f for f in fields(base)} if base is not None else {}
    base_docs = field_docs(base) if base is not None else {}
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    for f in fields(config_cls):
        default = json.dumps(_default(f), default=str)
        if f.name in base_fields and (json.dumps(_default(base_fields[f.name]), default=str) == default
                                      and base_docs.get(f.name) == docs.get(f.name)):
            continue
        desc = docs.get(f.name, "").replace("|", "\\|")
        lines.append(f"| `{f.name}` | `{_type_name(hints[f.name])}` | `{default}` | {desc} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainers <method> [options]``: train with the method's trainer."""
    args = list(sys.argv[1:] if argv is None else argv)
    methods = ", ".join(METHODS.names())
    if not args or args[0] in ("-h", "--help") or args[0] not in METHODS:
        print(f"usage: python -m trainers {{{methods}}} [options]\n\n"
              f"Train an LLM agent with one of the methods: {methods}.\n"
              "`python -m trainers <method> --help` lists the method's options.")
        return 0 if args and args[0] in ("-h", "--help") else 2
    method, rest = METHODS.get(args[0]), args[1:]
    if "--config-table" in rest:  # the Markdown table of the docs
        print(config_table(method.config))
        return 0
    config = config_from_args(method.config, rest, prog=f"python -m trainers {args[0]}")
    trainer = method.build(config)
    metrics = trainer.train()
    if trainer.is_main:
        shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith(("eval/", "env/success"))}
        print(json.dumps(shown, indent=1))
    return 0
