"""Scale-out: two CPU processes (torchrun + Accelerate, gloo) run GRPO (with SFT and sharded eval) and
PPO (with its critic); processes play different tasks, yet the replicas stay identical."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import torch
    torch.set_num_threads(1)
    from trainers.grpo import GRPOConfig, GRPOTrainer
    from trainers.ppo import PPOConfig, PPOTrainer

    out, cache = sys.argv[1], sys.argv[2]

    def digest(module):
        h = hashlib.sha256()
        for name, p in sorted(module.state_dict().items()):
            h.update(name.encode()); h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    common = dict(model_cache_dir=cache, tasks_per_iteration=2, group_size=2, num_envs=4, max_turns=2,
                  max_new_tokens=10, history_window=1, tiny_hidden=32, tiny_layers=1, tiny_heads=2,
                  tiny_corpus_episodes=10, lr=1e-3, progress_bar=False, tensorboard=False, save_final_model=False)
    result = {}
    for name, cls, tcls, kw in (
        ("grpo", GRPOConfig, GRPOTrainer, dict(iterations=2, sft_episodes=4, sft_steps=2, sft_lr=1e-3, eval_tasks=4,
                                               eval_max_turns=2)),
        ("ppo", PPOConfig, PPOTrainer, dict(iterations=1, tasks_per_iteration=3, group_size=1, eval_split=None)),
    ):
        trainer = tcls(cls(output_dir=f"{out}/{name}", **{**common, **kw}))
        init = digest(trainer.policy.model)
        seeds = []
        sample = trainer.sample_tasks
        trainer.sample_tasks = lambda: (lambda t: (seeds.extend(x.seed for x in t), t)[1])(sample())
        trainer.train()
        result[name] = {"rank": trainer.rank, "world": trainer.accelerator.num_processes, "init": init,
                        "final": digest(trainer.policy.model), "seeds": seeds,
                        "critic": digest(trainer.critic) if hasattr(trainer, "critic") else None,
                        "eval": getattr(trainer, "last_eval_report", None) and len(trainer.last_eval_report.episodes)}
    with open(f"{out}/rank{result['grpo']['rank']}.json", "w") as fh:
        json.dump(result, fh)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_replicas(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    # torchrun (what `accelerate launch --multi_gpu` runs underneath); Accelerate picks gloo on CPU
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), str(tmp_path / "out"), str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for name in ("grpo", "ppo"):
        a, b = ranks[0][name], ranks[1][name]
        assert (a["rank"], b["rank"], a["world"], b["world"]) == (0, 1, 2, 2)
        assert a["init"] == b["init"] and a["final"] == b["final"], f"{name}: replicas diverged"
        assert a["final"] != a["init"], f"{name}: nothing was trained"
        assert a["seeds"] and set(a["seeds"]).isdisjoint(b["seeds"]), f"{name}: processes must play different tasks"
    assert ranks[0]["ppo"]["critic"] == ranks[1]["ppo"]["critic"]
    assert ranks[0]["grpo"]["eval"] == ranks[1]["grpo"]["eval"] == 4, "sharded eval gathers every task"
    metrics = [json.loads(line) for line in (tmp_path / "out" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2], "only the main process logs"
