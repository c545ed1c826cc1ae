"""The ``pilot-envs`` command: list | play | eval | bench | docs."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

import pilot_envs
from pilot_envs.registration import ENVS

__all__ = ["main"]

PLAY_HELP = (
    "Type a command (e.g. 'go to cabinet 1'), or LLM-style text (<plan>..</plan>, <action>..</action>).\n"
    "Meta commands: ':admissible' lists what does something now, ':expert' shows the oracle's next command,\n"
    "':plan' shows the plan in effect, ':quit' leaves. 'help' asks the game itself."
)


def _entry(env_id: str):
    for e in ENVS:
        if e.id == env_id:
            return e
    raise SystemExit(f"unknown env id {env_id!r}; run 'pilot-envs list'")


def cmd_list(args: argparse.Namespace) -> int:
    for e in ENVS:
        ok = e.requires is None or importlib.util.find_spec(e.requires) is not None
        status = "" if ok else f"  (needs: pip install pilot-envs[{e.requires}])"
        extra = f" {e.kwargs}" if e.kwargs else ""
        print(f"{e.id:34s} max_steps={e.max_episode_steps}{extra}{status}")
    try:
        from pilot_envs import multiagent  # noqa: F401

        print("multi-agent (PettingZoo): pilot_envs.multiagent.planner_executor_v0, household_coop_v0")
    except ImportError:
        pass
    return 0


def _show(obs: dict[str, Any], info: dict[str, Any], reward: float | None = None) -> None:
    print()
    print(obs["text"])
    flags = "".join("x" if d else "." for d in info["subgoals_done"])
    line = f"[task: {obs['task']}] [progress {float(obs['progress'][0]):.2f} {flags}]"
    if reward is not None:
        line += f" [reward {reward:+.3f}]"
    print(line)


def cmd_play(args: argparse.Namespace) -> int:
    _entry(args.env_id)
    env = gym.make(args.env_id, plan_mode=args.plan_mode, reward_mode=args.reward_mode)
    options = {"split": args.split, "task_index": args.index} if args.split else None
    obs, info = env.reset(seed=args.seed, options=options)
    print(PLAY_HELP)
    if obs["plan"]:
        print("Plan:", " | ".join(obs["plan"]))
    _show(obs, info)
    while True:
        try:
            line = input("> ")
        except EOFError:
            print()
            break
        if line.strip() in (":quit", ":q", ":exit"):
            break
        if line.strip() == ":admissible":
            print("\n".join(obs["admissible_commands"]))
            continue
        if line.strip() == ":expert":
            print(info.get("expert_action"), "| remaining:", " ; ".join(info.get("expert_plan", ())))
            continue
        if line.strip() == ":plan":
            print(" | ".join(obs["plan"]) or "(no plan in effect)")
            continue
        obs, reward, term, trunc, info = env.step(line)
        _show(obs, info, float(reward))
        if term or trunc:
            print("\n*** You won! ***" if info["won"] else "\n*** Episode over. ***")
            break
    env.close()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pilot_envs.agents import make_agent
    from pilot_envs.evaluate import evaluate

    _entry(args.env_id)
    agent_kwargs = {"seed": args.seed} if args.agent == "random" else {}
    agent = make_agent(args.agent, **agent_kwargs)
    indices = range(args.limit) if args.limit else None
    report = evaluate(
        args.env_id,
        agent,
        split=args.split,
        indices=indices,
        seed=args.seed,
        progress_bar=not args.quiet,
        env_kwargs={"plan_mode": args.plan_mode},
    )
    print(report.table())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pilot_envs.bench import render_markdown, run_bench

    sections = args.sections.split(",") if args.sections else None
    rows, skipped = run_bench(sections, quick=args.quick)
    command = "pilot-envs bench" + (f" --sections {args.sections}" if args.sections else "") + (
        " --quick" if args.quick else ""
    )
    text = render_markdown(rows, skipped, command)
    print(text)
    if args.out:
        _write_section(Path(args.out), "env-throughput", text)
        print(f"written to {args.out}")
    return 0


def _write_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers (atomically)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{body}{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def cmd_docs(args: argparse.Namespace) -> int:
    from pilot_envs.docs import write_env_cards

    for path in write_env_cards(Path(args.out)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pilot-envs", description=pilot_envs.__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"pilot-envs {pilot_envs.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registered env ids")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("play", help="play an env in the terminal")
    s.add_argument("env_id")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--split", default=None, help="train | valid_seen | valid_unseen")
    s.add_argument("--index", type=int, default=None, help="task index within --split")
    s.add_argument("--plan-mode", default="oracle", choices=["none", "oracle", "agent"])
    s.add_argument("--reward-mode", default="progress", choices=["sparse", "progress", "milestone"])
    s.set_defaults(fn=cmd_play)

    s = sub.add_parser("eval", help="evaluate an agent on a whole split")
    s.add_argument("env_id")
    s.add_argument("--agent", default="expert", help="expert | random (trainers register more)")
    s.add_argument("--split", default="valid_unseen")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    s.add_argument("--plan-mode", default="none", choices=["none", "oracle", "agent"])
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("bench", help="measure steps/s and reset time of every installed engine")
    s.add_argument("--sections", default=None, help="comma-separated: native,alfworld,textworld,scienceworld")
    s.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    s.add_argument("--out", default=None, help="update this markdown file (e.g. docs/benchmarks.md)")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("docs", help="render every env's docstring to markdown env cards")
    s.add_argument("--out", default="docs/envs")
    s.set_defaults(fn=cmd_docs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"pilot-envs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
