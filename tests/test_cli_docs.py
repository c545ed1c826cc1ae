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


# ---------------------------------------------------------------------------------------------- leaving and errors
def _read_until(stream, marker: bytes, timeout: float = 60.0) -> bytes:
    import os
    import select
    import time

    out, deadline = b"", time.monotonic() + timeout
    while not out.endswith(marker) and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.5)[0]:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            out += chunk
    return out


def test_play_ctrl_c_exits_130_without_a_traceback():
    import signal
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "pilot_envs", "play", "PilotALFWorld-v0", "--seed", "3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert _read_until(proc.stdout, b"> ").endswith(b"> ")  # waiting for a command
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err


def test_play_ends_quietly_at_the_end_of_input(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("look\n"))  # EOF after one command
    assert main(["play", "PilotALFWorld-v0", "--seed", "3"]) == 0
    monkeypatch.setattr(sys, "stdin", None)  # no stdin at all (`pilot-envs play ... <&-`)
    assert main(["play", "PilotALFWorld-v0", "--seed", "3"]) == 0
    assert "[progress" in capsys.readouterr().out


@pytest.mark.parametrize("limit", ["-5", "0", "two"])
def test_eval_limit_must_be_positive(limit, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "PilotALFWorldSmall-v0", "--limit", limit, "--quiet"])
    assert exc.value.code == 2 and "--limit" in capsys.readouterr().err


def _fake_section(labels):
    from pilot_envs.bench import BenchRow

    return lambda quick=False: [BenchRow(label, 1234.0, 0.5, 0.25, "fake") for label in labels]


NATIVE_LABELS = ("PilotALFWorld-v0 (procedural tasks)", "PilotALFWorld-v0 (valid_unseen tasks)", "PilotALFWorldSmall-v0")


def test_bench_checks_out_before_running(tmp_path, monkeypatch, capsys):
    def never(quick=False):
        raise AssertionError("the benchmark ran although its output cannot be written")

    monkeypatch.setattr("pilot_envs.bench.native_section", never)
    assert main(["bench", "--sections", "native", "--out", str(tmp_path / "missing" / "bench.md")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--sections", "native", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--sections", "native,nosuch", "--quick"]) == 2


def test_bench_out_keeps_the_sections_it_did_not_measure(tmp_path, monkeypatch):
    from pilot_envs import bench

    out = tmp_path / "benchmarks.md"
    committed = (ROOT / "docs" / "benchmarks.md").read_text()
    out.write_text(committed + "\nAfter the block.\n")
    block = committed.split("<!-- env-throughput:start -->")[1].split("<!-- env-throughput:end -->")[0]
    old_rows = [line for line in block.splitlines() if line.startswith("| ") and "engine |" not in line]
    other = [row for row in old_rows if row.split("|")[1].strip() not in NATIVE_LABELS]
    assert other, "docs/benchmarks.md has rows of other sections than native"
    monkeypatch.setattr(bench, "native_section", _fake_section(NATIVE_LABELS))
    for _ in range(2):  # rewriting twice changes nothing more
        assert main(["bench", "--sections", "native", "--out", str(out)]) == 0
        text = out.read_text()
        assert all(row in text for row in other)  # the rows of sections not measured are kept
        assert not [row for row in old_rows if row not in other and row in text]  # the re-measured ones replaced
        assert committed.split("<!-- env-throughput:end -->")[1] in text  # what follows the block is untouched
        assert text.count("| fake |") == 3 and text.count("<!-- bench:native:start -->") == 1
        assert text.startswith(committed.split("<!-- env-throughput:start -->")[0]) and "After the block." in text
    # the other section measured too: nothing of the old block is left, each section in its own block
    monkeypatch.setitem(bench.SECTIONS, "alfworld", "pilot_envs.bench:_fake_alfworld")
    monkeypatch.setattr(bench, "_fake_alfworld", _fake_section(["real engine"]), raising=False)
    assert main(["bench", "--sections", "alfworld", "--out", str(out)]) == 0
    text = out.read_text()
    assert not [row for row in old_rows if row in text] and text.count("| fake |") == 4
    assert "Reproduce: `pilot-envs bench --sections native`" in text
    assert "Reproduce: `pilot-envs bench --sections alfworld`" in text


def test_play_index_needs_a_split(capsys):
    assert main(["play", "PilotALFWorld-v0", "--index", "3"]) == 2
    assert "--index needs --split" in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly():
    """``pilot-envs list | head -1``: the reader leaves early; no traceback, the shell's exit code for SIGPIPE."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pilot_envs", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like head after its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and "Traceback" not in err, err
