"""Long work shows progress: SFT steps, rollouts, updates, evaluation and iterations print a line at least every
``progress_every`` seconds (tqdm bars do not show in log files)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from trainers.core.progress import Heartbeat, eta, fmt_seconds
from trainers.grpo import GRPOConfig, GRPOTrainer


def test_heartbeat_prints_at_most_every_period() -> None:
    out = io.StringIO()
    beat = Heartbeat("x", every=3600.0, stream=out)
    calls = []
    beat(lambda: calls.append(1) or "first")  # within the period: neither printed nor even formatted
    assert out.getvalue() == "" and calls == []
    beat(lambda: "forced", force=True)
    assert out.getvalue().startswith("[x 0s] forced")
    silent = Heartbeat("x", every=0.0, stream=out)
    silent(lambda: "never", force=True)
    assert "never" not in out.getvalue()


def test_time_formats() -> None:
    assert (fmt_seconds(5), fmt_seconds(75), fmt_seconds(3700)) == ("5s", "1m15s", "1h01m")
    assert (eta(0, 10, 5.0), eta(5, 10, 10.0), eta(10, 10, 3.0)) == ("?", "10s", "0s")


def test_every_phase_of_a_run_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = GRPOConfig(output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), iterations=1,
                     tasks_per_iteration=1, group_size=2, num_envs=2, max_turns=2, max_new_tokens=6,
                     history_window=0, tiny_hidden=16, tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=4,
                     sft_episodes=1, sft_steps=2, eval_tasks=2, eval_max_turns=2, progress_bar=False,
                     tensorboard=False, save_final_model=False, transcripts_every=0, progress_every=1e-9)
    GRPOTrainer(cfg).train()
    err = capsys.readouterr().err
    for phase in ("sft step 2/2", "evaluating valid_unseen at iteration 0", "iteration 1/1: rollouts",
                  "iteration 1/1: update", "iteration 1/1: ", "env steps, success", "ETA"):
        assert phase in err, phase


def test_ticking_repeats_the_latest_status_during_a_long_call() -> None:
    import time

    out = io.StringIO()
    beat = Heartbeat("x", every=0.05, stream=out)
    with beat.ticking():
        beat(lambda: "turn 3/15", force=True)
        time.sleep(0.3)  # one long call: no new status offered meanwhile
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("turn 3/15") and any(line.endswith("still working: turn 3/15") for line in lines[1:])
    assert len(lines) >= 3 and not any("still working: still working" in line for line in lines), lines
    n = len(lines)
    time.sleep(0.15)
    assert len(out.getvalue().splitlines()) == n, "the ticker stops with the block"
