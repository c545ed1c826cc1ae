"""The command line, the generated env cards, and the README/CI contract."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from pilot_envs.cli import main
from pilot_envs.docs import env_card, write_env_cards

ROOT = Path(__file__).resolve().parents[1]


def test_list(capsys):
    assert main(["list"]) == 0
    assert "PilotALFWorld-v0" in capsys.readouterr().out


def test_eval_expert_solves_valid_unseen(capsys):
    assert main(["eval", "PilotALFWorld-v0", "--agent", "expert", "--split", "valid_unseen", "--quiet"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| all"))
    assert "134" in row and "1.000" in row


def test_eval_random_and_bad_split(capsys):
    assert main(["eval", "PilotALFWorldSmall-v0", "--agent", "random", "--limit", "5", "--quiet"]) == 0
    assert main(["eval", "PilotALFWorld-v0", "--split", "test", "--quiet"]) == 2
    assert "no split" in capsys.readouterr().err


def test_play_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(":admissible\n:expert\nlook\nhelp\n:quit\n"))
    assert main(["play", "PilotALFWorld-v0", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Your task is to:" in out and "Available commands:" in out and "[progress" in out


def test_play_to_the_end(monkeypatch, capsys):
    import gymnasium as gym

    env = gym.make("PilotALFWorld-v0")
    _, info = env.reset(seed=8)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(info["expert_plan"]) + "\n"))
    assert main(["play", "PilotALFWorld-v0", "--seed", "8"]) == 0
    assert "You won!" in capsys.readouterr().out


def test_bench_native_quick(tmp_path, capsys):
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\nkept\n")
    assert main(["bench", "--sections", "native", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and "PilotALFWorld-v0" in text and "<!-- env-throughput:start -->" in text


def test_env_cards_are_generated_and_current(tmp_path):
    written = write_env_cards(tmp_path)
    assert written
    for path in written:
        committed = ROOT / "docs" / "envs" / path.name
        assert committed.exists(), f"run `pilot-envs docs` to add {path.name}"
        assert committed.read_text() == path.read_text(), f"docs/envs/{path.name} is stale: run `pilot-envs docs`"


def test_env_card_has_gymnasium_sections():
    from pilot_envs.alfworld.env import PilotALFWorldEnv

    card = env_card("PilotALFWorld-v0", PilotALFWorldEnv, ["PilotALFWorld-v0"])
    for section in ("Description", "Action Space", "Observation Space", "Starting State", "Rewards",
                    "Episode End", "Information", "Arguments", "Version History"):
        assert f"## {section}" in card


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->", 1)[1]
    command = re.search(r"^(python .+)$", block, re.M).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and "eval" in ci
    assert command.startswith("python -m pytest")


@pytest.mark.parametrize("bad", [["eval", "NoSuchEnv-v0"], ["play", "NoSuchEnv-v0"]])
def test_unknown_env_is_a_clear_error(bad):
    with pytest.raises(SystemExit, match="unknown env id"):
        main(bad)
