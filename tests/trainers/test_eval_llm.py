"""examples/eval_llm.py: few-shot examples from the oracle, the strict format check, the same play as
evaluate_policy, the results files and the docs section (tiny model, a handful of tasks)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import pilot_envs  # noqa: F401
from pilot_envs.core.protocol import parse_action
from trainers.core.evaluation import evaluate_policy, split_tasks
from trainers.core.models import resolve_model
from trainers.core.policy import Policy
from trainers.core.rollout import TaskSpec
from trainers.core.sft import expert_corpus
from trainers.core.tiny import tiny_corpus_from_texts

ROOT = Path(__file__).resolve().parents[2]
ENV = "PilotALFWorldSmall-v0"


def _load_example():
    spec = importlib.util.spec_from_file_location("eval_llm", ROOT / "examples" / "eval_llm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_llm"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


ev = _load_example()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus = expert_corpus(gym.make(ENV), [TaskSpec(i, {"split": "train"}) for i in range(10)])
    return resolve_model("tiny", tmp_path_factory.mktemp("cache"), corpus=tiny_corpus_from_texts(corpus),
                         hidden=32, layers=1, heads=2)


def test_fewshot_examples_replay_the_oracle_on_train_tasks() -> None:
    env = gym.make(ENV)
    shots = ev.fewshot_episodes(env, 2, split="train", max_steps=10)
    assert len(shots) == 2 and len({s.task_type for s in shots}) == 2
    for shot in shots:
        assert shot.task_id.startswith("train/") and 1 <= len(shot.steps) <= 10
        index = int(shot.task_id.split("/")[1])
        obs, info = env.reset(seed=index, options={"split": "train", "task_index": index})
        for observation, response in shot.steps:  # the env's real observations, the expert's commands
            assert observation == str(obs["text"]).strip()
            parsed = parse_action(response)
            assert parsed.style == "react" and parsed.command == info["expert_action"]
            assert response.startswith("Thought: ") and f"now I need to {ev.current_milestone(info)}." in response
            obs, _, _, _, info = env.step(response)
        assert info["won"] and shot.final == str(obs["text"]).strip()
    text = ev.fewshot_text(shots)
    assert text.count("(The task is solved.)") == 2 and "Example 2. Task: " in text
    assert all(response in text for shot in shots for _, response in shot.steps)


@pytest.mark.parametrize(
    ("fmt", "text", "ok"),
    [
        ("think_action", "<think>the mug is near</think><action>go to cabinet 1</action>", True),
        ("think_action", "<think>unclosed<action>go to cabinet 1</action>", False),
        ("think_action", "go to cabinet 1", False),  # the env accepts a bare command; the format does not
        ("think_action", "Thought: x\nAction: go to cabinet 1", False),
        ("react", "Thought: the mug is near\nAction: go to cabinet 1", True),
        ("react", "Thought: x\nAction: go to cabinet 1\nObservation", True),  # cut at a stop string
        ("react", "Thought: x\nAction: go to cabinet 1\nAction: look", False),
        ("react", "Action: go to cabinet 1", False),
        ("react", "Thought: only thinking", False),
    ],
)
def test_format_followed(fmt: str, text: str, ok: bool) -> None:
    assert ev.format_followed(fmt, text) is ok


def test_fewshot_system_is_budgeted_and_folded_without_a_system_role(model_path: str) -> None:
    policy = Policy.from_pretrained(model_path, seed=0)
    args = ev.parse_args(["--model", model_path, "--max-prompt-tokens", "300"])
    shots = ev.fewshot_episodes(gym.make(ENV), 1)
    system = ev.fewshot_text(shots)
    n_system = len(policy.tokenizer(system, add_special_tokens=False)["input_ids"])
    agent = ev.build_agent(ev.SETTINGS["react_fewshot"], args, system, False, "a house", n_system)
    assert agent.max_prompt_tokens == 300 + n_system + 8
    env = gym.make(ENV)
    obs, _ = env.reset(seed=0, options={"split": "valid_unseen", "task_index": 0})
    history = [("You arrive at countertop 1. On the countertop 1, you see a mug 1 and a spoon 2. " * 6, "look")] * 2
    for role in (True, False):
        renderer = ev.EvalRenderer(policy, agent, system_role=role)
        assert renderer.options.max_length == 300 - 16  # the user message keeps its own budget, examples aside
        messages = renderer.messages(obs, history, None)
        if role:
            assert [m["role"] for m in messages] == ["system", "user"] and messages[0]["content"] == system
        else:  # the examples go before the task
            assert [m["role"] for m in messages] == ["user"]
            assert messages[0]["content"].index(system) < messages[0]["content"].index(str(obs["task"]))
        ids = renderer(obs, history, None)
        assert len(ids) < agent.max_prompt_tokens  # never the hard cut: the examples stay whole
        assert policy.decode(ids).count("(The task is solved.)") == 1


def test_plays_like_evaluate_policy_and_writes_results_and_docs(model_path: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--model", model_path, "--tasks", "3", "--max-turns", "2", "--max-new-tokens", "6", "--batch", "2",
            "--shots", "1", "--out", str(out), "--progress-every", "0"]
    records = ev.main(argv)
    assert [r["setting"] for r in records] == list(ev.SETTINGS)
    for rec in records:
        saved = json.loads((out / f"{rec['setting']}.json").read_text())
        rows = saved["by_type"]
        assert rows["all"]["n"] == 3 and rows["all"]["turns"] > 0
        for key in ("success", "progress", "invalid_action", "format_error", "steps"):
            assert 0 <= rows["all"][key] <= (2 if key == "steps" else 1)
        assert saved["timing"]["generated_tokens"] > 0 and saved["timing"]["tokens_per_s"] > 0
        assert saved["command"].endswith(f"--settings {rec['setting']}")
        lines = (out / f"{rec['setting']}.transcripts.jsonl").read_text().splitlines()
        assert len(lines) == 3
    assert records[2]["prompt_tokens"]["system"] > 0 and records[2]["shots"]

    # the same episodes as the trainers' evaluate_policy (same agent, seed, temperature, batch)
    policy = Policy.from_pretrained(model_path, seed=0)
    args = ev.parse_args(argv)
    envs = [gym.make(ENV) for _ in range(2)]
    tasks = split_tasks(envs[0], "valid_unseen", 3)
    rec, trajs = ev.evaluate_setting(policy, envs, ev.SETTINGS["react"], tasks, args, system_role=False)
    agent = ev.build_agent(ev.SETTINGS["react"], args, None, False, rec["agent"]["domain"], 0)
    report, ref = evaluate_policy(policy, envs, agent, tasks, temperature=args.temperature, seed=args.seed)
    assert [[t.response_text for t in x.turns] for x in trajs] == [[t.response_text for t in x.turns] for x in ref]
    assert rec["by_type"]["all"]["success"] == report.by_type()["all"]["success"]

    # docs: a fresh section goes before the SB3 section; a rerun replaces it and keeps the notes
    docs = tmp_path / "results.md"
    original = "# Results\n\nintro\n\n## Stable-Baselines3 (no LLM)\n\nsb3 text\n"
    docs.write_text(original)
    ev.write_docs(records, docs)
    text = docs.read_text()
    assert text.index(ev.MARK_START) < text.index(ev.MARK_END) < text.index("## Stable-Baselines3 (no LLM)")
    assert text.startswith("# Results\n\nintro\n\n") and text.endswith("## Stable-Baselines3 (no LLM)\n\nsb3 text\n")
    assert text.count("```bash") == 3 and "### ReAct, few-shot" in text
    docs.write_text(text.replace(f"{ev.NOTES_START}\n", f"{ev.NOTES_START}\nOur reading.\n"))
    ev.write_docs(records[:1], docs)
    again = docs.read_text()
    assert "Our reading." in again and "### ReAct, zero-shot" not in again and again.count(ev.MARK_START) == 1
    assert again.replace(again[again.index(ev.MARK_START):again.index(ev.MARK_END)], "") == \
        text.replace(text[text.index(ev.MARK_START):text.index(ev.MARK_END)], "")
