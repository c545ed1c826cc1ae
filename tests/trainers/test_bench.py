"""``python -m trainers.bench`` runs end to end (on the tiny model here) and rewrites only its own section."""

from __future__ import annotations

from pathlib import Path

from trainers.bench import MARK_END, MARK_START, main


def test_bench_measures_and_writes_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nother numbers stay\n")
    argv = ["--model", "tiny", "--cache-dir", str(tmp_path / "cache"), "--batch", "2", "--new-tokens", "3",
            "--envs", "2", "--turns", "1", "--repeats", "1", "--out", str(doc)]
    assert main(argv) == 0
    text = doc.read_text()
    assert "other numbers stay" in text and text.count(MARK_START) == 1 and MARK_END in text
    assert "| sampling, ours (`Policy.generate`) |" in text and "Reproduce: `python -m trainers.bench --model tiny" in text
    assert main(argv) == 0 and doc.read_text().count(MARK_START) == 1  # rewritten in place
