"""Run directories are owned (trainers.core.rundir) and checkpoints are data, never code
(trainers.core.checkpoint): a fresh run refuses a directory holding a run, resume refuses another config,
two trainers cannot share a directory, a crafted or damaged checkpoint is never executed and never loaded."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.core.checkpoint import CheckpointError, CheckpointWarning, find_checkpoint, save_checkpoint
from trainers.core.logger import read_metrics
from trainers.core.rundir import RunDirError, RunLock, config_mismatch
from trainers.grpo import GRPOConfig, GRPOTrainer


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-cache")


def _cfg(out: Path, cache: Path, **kw) -> GRPOConfig:
    base = dict(
        output_dir=str(out), model_cache_dir=str(cache), iterations=1, tasks_per_iteration=1, group_size=2,
        num_envs=2, max_turns=2, max_new_tokens=6, history_window=0, tiny_hidden=16, tiny_layers=1, tiny_heads=2,
        tiny_corpus_episodes=4, sft_episodes=0, lr=1e-3, eval_split=None, progress_bar=False, tensorboard=False,
        save_final_model=False, transcripts_every=0,
    )
    return GRPOConfig(**{**base, **kw})


def _run(out: Path, cache: Path, **kw) -> GRPOTrainer:
    trainer = GRPOTrainer(_cfg(out, cache, **kw))
    trainer.train()
    return trainer


# ------------------------------------------------------------------------------------------ run directory
def test_fresh_run_refuses_a_directory_holding_a_run(tmp_path: Path, cache: Path) -> None:
    _run(tmp_path / "run", cache, iterations=2)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(RunDirError, match=r"already holds a run.*--resume.*--overwrite"):
        _run(tmp_path / "run", cache)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before, "the old run is untouched"
    assert (tmp_path / "run" / "checkpoints" / "step-000002").is_dir()


def test_overwrite_replaces_the_run(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    _run(run, cache, iterations=3)
    (run / "stdout.log").write_text("a job runner's log")  # not the trainer's: kept, and does not count as a run
    _run(run, cache, iterations=1, overwrite=True)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001"], "no checkpoint of the old run"
    assert (run / "stdout.log").read_text() == "a job runner's log"


def test_a_directory_with_other_files_only_is_usable(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stdout.log").write_text("x")
    assert _run(tmp_path / "run", cache).step == 1


def test_resume_refuses_another_config_and_names_the_fields(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    _run(run, cache, iterations=1)
    with pytest.raises(RunDirError, match=r"seed: saved 0, requested 5") as err:
        _run(run, cache, iterations=2, resume=True, seed=5, lr=2e-3)
    assert "lr: saved 0.001, requested 0.002" in str(err.value)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1], "no rows of another run"
    resumed = _run(run, cache, iterations=2, resume=True)  # only the budget changes: allowed
    assert resumed.step == 2
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    import json

    record = json.loads((run / "run.json").read_text())
    assert record["resumes"][-1]["from"] == "checkpoints/step-000001" and record["resumes"][-1]["step"] == 1


def test_config_mismatch_ignores_only_the_free_fields() -> None:
    saved = {"iterations": 3, "seed": 0, "progress_bar": True, "lr": 1.0}
    assert config_mismatch(saved, {**saved, "iterations": 9, "progress_bar": False}) == []
    assert config_mismatch(saved, {**saved, "seed": 1, "new": 2}) == ["new: saved \"<absent>\", requested 2",
                                                                      "seed: saved 0, requested 1"]


def test_two_trainers_cannot_share_a_run_directory(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from trainers.core.rundir import RunLock; "
         "lock = RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by another trainer \(pid {holder.pid} "):
            _run(run, cache)
        assert not (run / "metrics.jsonl").exists() and not (run / "run.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _run(run, cache).step == 1, "the lock dies with its process"


def test_the_lock_is_released_when_the_run_ends_or_fails(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    trainer = _run(run, cache)
    assert trainer.run_lock is None
    RunLock(run).acquire().release()  # free again
    bad = GRPOTrainer(_cfg(run, cache, iterations=2, resume=True))
    bad.train_step = lambda: (_ for _ in ()).throw(RuntimeError("boom"))  # fails inside the run
    with pytest.raises(RuntimeError, match="boom"):
        bad.train()
    RunLock(run).acquire().release()


# ------------------------------------------------------------------------------------------ checkpoints
class _Payload:
    """Unpickling this creates a directory: the stand-in for a shell command in a crafted checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_crafted_pickle_in_a_checkpoint_never_runs(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    _run(run, cache, iterations=1)
    step = run / "checkpoints" / "step-000001"
    marker = tmp_path / "pwned"
    for name in ("rng.pt", "optimizers.pt"):
        (step / name).write_bytes(pickle.dumps({"per_process": [_Payload(marker)]}))
    resumed = _run(run, cache, iterations=2, resume=True)  # the .pt files are not part of the format: ignored
    assert resumed.step == 2 and not marker.exists()
    # an older-format checkpoint (pickles, no manifest) is refused, not unpickled
    old = run / "checkpoints" / "step-000009"
    old.mkdir()
    for name in ("rng.pt", "optimizers.pt"):
        (old / name).write_bytes(pickle.dumps(_Payload(marker)))
    (old / "trainer_state.json").write_text('{"step": 9}')
    with pytest.warns(CheckpointWarning, match="older pickle format"):
        assert find_checkpoint(run / "checkpoints").name == "step-000002"
    assert not marker.exists()


def test_a_tampered_state_file_is_refused(tmp_path: Path) -> None:
    import hashlib
    import json

    from trainers.core.checkpoint import load_checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(tmp_path, 1, modules={"m": model}, optimizers={"o": opt}, rng={"x": torch.zeros(2)},
                           state={})
    (path / "rng.json").write_text('{"__tensor__": "nope"}')
    with pytest.raises(CheckpointError, match=r"rng\.json: 22 bytes, the manifest says"):
        find_checkpoint(tmp_path)
    # whoever can edit the file can edit the manifest too: the content itself is still only data, and checked
    manifest = json.loads((path / "manifest.json").read_text())
    data = (path / "rng.json").read_bytes()
    manifest["files"]["rng.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert find_checkpoint(tmp_path) == path
    with pytest.raises(CheckpointError, match=r"rng\.json: .*names a tensor 'nope'"):
        load_checkpoint(path, modules={"m": model}, optimizers={"o": opt})


def _ckpt(root: Path, step: int) -> Path:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return save_checkpoint(root, step, modules={"policy": model}, optimizers={"policy": opt},
                           rng={"torch": torch.get_rng_state(), "numpy": {"g": {"state": 2**100, "x": float("nan")}}},
                           state={"note": "x"})


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, damage: str) -> None:
    _ckpt(tmp_path, 1)
    newest = _ckpt(tmp_path, 2)
    target = newest / ("manifest.json" if damage == "manifest" else "policy.safetensors")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text("{not json")
    with pytest.warns(CheckpointWarning, match=str(target.name)):
        assert find_checkpoint(tmp_path).name == "step-000001"


def test_no_usable_checkpoint_names_every_file(tmp_path: Path) -> None:
    for step in (1, 2):
        p = _ckpt(tmp_path, step)
        (p / "optimizers.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(CheckpointError) as err:
        find_checkpoint(tmp_path)
    msg = str(err.value)
    assert "step-000001/optimizers.safetensors" in msg and "step-000002/optimizers.safetensors" in msg


def test_resume_falls_back_past_a_damaged_checkpoint(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    _run(run, cache, iterations=2, save_every=1)
    newest = run / "checkpoints" / "step-000002" / "policy.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    trainer = GRPOTrainer(_cfg(run, cache, iterations=3, save_every=1, resume=True))
    with pytest.warns(CheckpointWarning, match="step-000002"):
        trainer.train()
    assert trainer.step == 3
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


def test_optimizer_and_rng_state_round_trip_exactly(tmp_path: Path) -> None:
    from trainers.core.checkpoint import load_checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), betas=(0.8, 0.9))
    for _ in range(2):
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    rng = {"torch": torch.get_rng_state(), "cuda": None, "numpy": {"t": {"state": {"state": 2**127 + 5, "inc": 3}}},
           "inf": float("-inf"), "t": (1, "a", None)}
    path = save_checkpoint(tmp_path, 3, modules={"m": model}, optimizers={"o": opt}, rng=rng, state={"k": [1]})
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters())
    state, rng2 = load_checkpoint(path, modules={"m": model2}, optimizers={"o": opt2})
    assert state["step"] == 3 and state["k"] == [1]
    assert torch.equal(rng2["torch"], rng["torch"]) and rng2["numpy"] == rng["numpy"] and rng2["t"] == (1, "a", None)
    assert rng2["inf"] == float("-inf")
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(v, b["state"][k][name])


def test_unsafe_state_is_refused_when_saving(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"rng\.x.*object"):
        save_checkpoint(tmp_path, 1, modules={"m": model}, optimizers={}, rng={"x": object()}, state={})
    assert not any(p.name.startswith("step-") for p in tmp_path.iterdir())


def test_lock_file_names_the_holder(tmp_path: Path) -> None:
    lock = RunLock(tmp_path).acquire()
    try:
        with pytest.raises(RunDirError, match=rf"pid {os.getpid()} "):
            RunLock(tmp_path).acquire()
    finally:
        lock.release()
    RunLock(tmp_path).acquire().release()
