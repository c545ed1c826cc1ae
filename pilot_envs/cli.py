"""The ``pilot-envs`` command: list | play | eval | replay | serve | bench | docs."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

import pilot_envs
from pilot_envs.registration import ENVS
from pilot_envs.serve.cli import add_parser as add_serve_parser

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


def _read_command() -> str | None:
    """The next line typed, or None at the end of input (EOF, or no stdin at all)."""
    if sys.stdin is None or sys.stdin.closed:
        return None
    try:
        return input("> ")
    except EOFError:
        return None


def cmd_play(args: argparse.Namespace) -> int:
    _entry(args.env_id)
    if args.index is not None and not args.split:
        raise ValueError("--index needs --split (a task index counts within a split)")
    if args.transcript:
        _check_writable(Path(args.transcript))
    env = gym.make(args.env_id, plan_mode=args.plan_mode, reward_mode=args.reward_mode)
    if args.transcript:
        from pilot_envs.replay import TranscriptRecorder

        env = TranscriptRecorder(env)
    try:
        _play(env, args)
    finally:  # also on Ctrl-C (main() turns it into exit code 130): engines behind the env are shut down
        if args.transcript:
            from pilot_envs.replay import write_transcripts

            write_transcripts(args.transcript, env.episodes)
            print(f"transcript: {args.transcript} (replay it with: pilot-envs replay {args.transcript})")
        env.close()
    return 0


def _play(env: gym.Env, args: argparse.Namespace) -> None:
    options = {"split": args.split, "task_index": args.index} if args.split else None
    obs, info = env.reset(seed=args.seed, options=options)
    print(PLAY_HELP)
    if obs["plan"]:
        print("Plan:", " | ".join(obs["plan"]))
    _show(obs, info)
    while True:
        line = _read_command()
        if line is None:  # end of input: leave like :quit
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


def cmd_eval(args: argparse.Namespace) -> int:
    from pilot_envs.agents import make_agent
    from pilot_envs.evaluate import evaluate

    _entry(args.env_id)
    agent_kwargs = {"seed": args.seed} if args.agent == "random" else {}
    agent = make_agent(args.agent, **agent_kwargs)
    indices = range(args.limit) if args.limit is not None else None
    if args.transcripts:
        _check_writable(Path(args.transcripts))
    report = evaluate(
        args.env_id,
        agent,
        split=args.split,
        indices=indices,
        seed=args.seed,
        progress_bar=not args.quiet,
        env_kwargs={"plan_mode": args.plan_mode},
        transcripts=args.transcripts,
    )
    print(report.table())
    if args.transcripts:
        print(f"transcripts: {args.transcripts} (replay them with: pilot-envs replay {args.transcripts})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pilot_envs.replay import replay_file

    path = Path(args.transcript)
    if not path.is_file():
        raise ValueError(f"{path}: no such transcript file")
    same, diverged, failed = replay_file(path, limit=args.limit)
    print(f"{same} identical, {diverged} diverged, {failed} could not be replayed")
    return 0 if diverged == failed == 0 else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from pilot_envs.bench import SECTIONS, bench_command, merge_sections, render_markdown, run_sections
    from pilot_envs.docs import write_marked

    sections = args.sections.split(",") if args.sections else None
    unknown = [name for name in sections or () if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown bench section(s) {unknown}; known: {', '.join(SECTIONS)}")
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_writable(out)  # before a run that takes minutes, not after it
    results = run_sections(sections, quick=args.quick)
    rows = [row for r in results for row in r.rows]
    print(render_markdown(rows, [r.skipped for r in results if r.skipped], bench_command(sections, args.quick)))
    if out is not None:
        measured = {r.name: render_markdown(r.rows, [], bench_command([r.name], args.quick))
                    for r in results if not r.skipped}  # a section that could not run keeps its earlier numbers
        write_marked(out, "<!-- env-throughput:start -->", "<!-- env-throughput:end -->",
                     lambda old: merge_sections(old, measured))
        print(f"written to {out}")
    return 0


def _check_writable(path: Path) -> None:
    """A clear error when ``path`` cannot be written (its folder is missing or read-only, or it is a folder)."""
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder, not a file")
    if not folder.is_dir():
        raise ValueError(f"--out {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path}: the folder {folder} is not writable")


def cmd_docs(args: argparse.Namespace) -> int:
    from pilot_envs.docs import write_env_cards

    for path in write_env_cards(Path(args.out)):
        print(path)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    s.add_argument("--transcript", default=None, help="write the episode here as JSONL (pilot-envs replay reads it)")
    s.set_defaults(fn=cmd_play)

    s = sub.add_parser("eval", help="evaluate an agent on a whole split")
    s.add_argument("env_id")
    s.add_argument("--agent", default="expert", help="expert | random (trainers register more)")
    s.add_argument("--split", default="valid_unseen")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=_positive_int, default=None, help="only the first N tasks (N >= 1)")
    s.add_argument("--plan-mode", default="none", choices=["none", "oracle", "agent"])
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--transcripts", default=None, help="write every episode here as JSONL (for pilot-envs replay)")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("replay", help="re-run recorded episodes and report identical or the first divergence")
    s.add_argument("transcript", help="a JSONL transcript (trainer, evaluation or play)")
    s.add_argument("--limit", type=_positive_int, default=None, help="only the first N episodes")
    s.set_defaults(fn=cmd_replay)

    add_serve_parser(sub)

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
    except KeyboardInterrupt:  # Ctrl-C: a short note and the shell's exit code for SIGINT, no traceback
        print("\npilot-envs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (``pilot-envs list | head``): stop quietly, as the shell's tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
