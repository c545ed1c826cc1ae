"""EPO trainer: the band penalty through the trainer's loss (values and gradient signs), the entropy history,
the phase schedule, exact equality with the baselines when its coefficients are zero, gradients that change
when the penalty acts, and a short end-to-end run with an exact resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers.core.checkpoint import latest_checkpoint
from trainers.core.cli import config_from_args
from trainers.core.logger import read_metrics
from trainers.core.policy import TokenLogprobs
from trainers.core.tiny import DEFAULT_CORPUS, build_tiny, tiny_corpus_from_texts
from trainers.core.trainer import RLBatch, Trainer
from trainers.epo import EPOConfig, EPOGRPOTrainer, EPOPPOTrainer, make_trainer
from trainers.epo.entropy import EntropyHistory
from trainers.epo.trainer import ENTROPY_REF
from trainers.grpo import GRPOTrainer
from trainers.ppo import PPOTrainer

BASELINES = {"grpo": GRPOTrainer, "ppo": PPOTrainer}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.set_num_threads(1)
    corpus = tiny_corpus_from_texts(DEFAULT_CORPUS)
    return str(build_tiny(tmp_path_factory.mktemp("epo") / "tiny", corpus, hidden=32, layers=1, heads=2, seed=0))


def small(model_dir: str, out: Path, **kw: Any) -> dict[str, Any]:
    """Config fields of a seconds-long CPU run."""
    return {"model": model_dir, "output_dir": str(out), "iterations": 2, "tasks_per_iteration": 2, "group_size": 2,
            "num_envs": 4, "max_turns": 3, "max_new_tokens": 8, "sft_episodes": 0, "eval_split": None,
            "tensorboard": False, "progress_bar": False, "save_final_model": False, "transcripts_every": 0, **kw}


@pytest.fixture(scope="module")
def trainer(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> EPOGRPOTrainer:
    cfg = EPOConfig(**small(model_dir, tmp_path_factory.mktemp("run"), entropy_coef=0.01, epo_alpha=0.5,
                            epo_kappa_lo=0.5, epo_kappa_hi=2.0, epo_schedule_iterations=10))
    tr = make_trainer(cfg)
    assert isinstance(tr, EPOGRPOTrainer)
    return tr


def synthetic(entropy: list[list[float]], lengths: list[int], turns: list[int]) -> tuple[RLBatch, TokenLogprobs]:
    """A batch whose PG and KL terms are 0 with 0 gradient (advantages 0, logp = old = ref = 0), so the
    entropy terms are all that acts on ``entropy``."""
    n, width = len(entropy), len(entropy[0])
    mask = torch.tensor([[j < k for j in range(width)] for k in lengths])
    zeros = torch.zeros(n, width, dtype=torch.float64)
    batch = RLBatch(trajectories=[], turns=[None] * n, prompt_ids=[[1]] * n, response_ids=[[1] * k for k in lengths],
                    old_logprobs=zeros, mask=mask, turn_idx=torch.tensor(turns), rewards=torch.zeros(n),
                    advantages=zeros, weights=mask.double(), ref_logprobs=zeros)
    out = TokenLogprobs(zeros.clone().requires_grad_(True),
                        torch.tensor(entropy, dtype=torch.float64, requires_grad=True), mask)
    return batch, out


def close(actual: Any, expected: Any, tol: float = 1e-9) -> None:
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


# ------------------------------------------------------------------------------------------------ config


def test_config_takes_the_base_defaults_and_validates() -> None:
    grpo, ppo = EPOConfig(), EPOConfig(base="ppo")
    assert (grpo.advantage, grpo.group_size, grpo.tasks_per_iteration, grpo.normalize_advantages) == ("grpo", 8, 8, False)
    assert (ppo.advantage, ppo.group_size, ppo.tasks_per_iteration, ppo.lam, ppo.normalize_advantages) == ("gae", 1, 32, 0.95, True)
    assert (grpo.entropy_coef, grpo.epo_beta, grpo.kl_coef, grpo.epo_alpha) == (0.001, 1.0, 0.01, 0.1)
    assert (grpo.epo_kappa_lo, grpo.epo_kappa_hi, grpo.epo_history_window) == (0.0, 2.0, None)
    assert type(ppo.base_config()).__name__ == "PPOConfig" and ppo.base_config().advantage == "gae"
    cli = config_from_args(EPOConfig, ["--base", "ppo", "--epo-alpha", "0.05", "--epo-history-window", "4",
                                       "--group-size", "none"])
    assert (cli.base, cli.epo_alpha, cli.epo_history_window, cli.group_size) == ("ppo", 0.05, 4, 1)
    for bad in ({"base": "sac"}, {"group_size": 1}, {"epo_kappa_lo": 3.0}, {"epo_alpha": -1.0},
                {"epo_history_window": 0}, {"epo_schedule_iterations": 0}):
        with pytest.raises(ValueError):
            EPOConfig(**bad)


def test_trainer_class_must_match_the_base(trainer: EPOGRPOTrainer) -> None:
    with pytest.raises(ValueError, match="base"):
        EPOPPOTrainer(trainer.config, policy=trainer.policy)


# ------------------------------------------------------------------------------------- band penalty


def test_band_penalty_through_the_trainer_loss_by_hand(trainer: EPOGRPOTrainer) -> None:
    # c_H .01, beta 1, alpha .5, kappa (.5, 2); history: Hbar_0 = 1 (band [.5, 2]), Hbar_1 = .5 (band
    # [.25, 1]); turn 5 unseen (no reference: no penalty, but its tokens count in the token-mean).
    # row 0 (turn 0): H = .2 .1 2.5 [pad]   relu parts .3 .4 .5
    # row 1 (turn 1): H = .1 .5 3.0 .9      relu parts .15 0 2 0
    # row 2 (turn 5): H = 10 [pad x3]       0
    # 8 tokens: P = .5 * 3.35 / 8 = .209375; outside 5/8; epo_band = .01 * 1 * w(0)=1 * P
    # entropy_bonus = -.01 * (2.8 + 4.5 + 10) / 8
    trainer.entropy_history = EntropyHistory()
    trainer.entropy_history.update({0: 1.0, 1: 0.5})
    trainer.step = 0
    batch, out = synthetic([[0.2, 0.1, 2.5, 0], [0.1, 0.5, 3.0, 0.9], [10.0, 0, 0, 0]], [3, 4, 1], [0, 1, 5])
    trainer.begin_epo_iteration(batch)
    close(batch.extras[ENTROPY_REF][:2], [1.0, 0.5])
    assert math.isnan(batch.extras[ENTROPY_REF][2])
    terms, stats = trainer.loss_terms(batch, [0, 1, 2], out)
    close(terms["epo_band"], 0.01 * 0.5 * 3.35 / 8)
    close(terms["entropy_bonus"], -0.01 * 17.3 / 8)
    close(stats["epo/band_penalty"], 0.5 * 3.35 / 8)
    close(stats["epo/outside_band_frac"], 5 / 8)
    close(terms["policy"], 0.0)
    close(terms["kl"], 0.0)

    # gradient of the band term alone: c_H alpha / 8 * (-1 below, +1 above, 0 inside or unreferenced), so a
    # descent step raises entropy below the band and lowers it above (pushes back in from both sides)
    (g_band,) = torch.autograd.grad(terms["epo_band"], out.entropy, retain_graph=True)
    unit = 0.01 * 0.5 / 8
    close(g_band, [[-unit, -unit, unit, 0], [-unit, 0, unit, 0], [0, 0, 0, 0]])
    # the whole loss: -c_H/8 from the entropy bonus everywhere, plus the band's push
    (g_all,) = torch.autograd.grad(sum(terms.values()), out.entropy)
    bonus = -0.01 / 8
    close(g_all, [[bonus - unit, bonus - unit, bonus + unit, 0], [bonus - unit, bonus, bonus + unit, bonus],
                  [bonus, 0, 0, 0]])

    # phase weight scales the band term: at e = E/2 = 5, w = .8
    trainer.step = 5
    trainer.begin_epo_iteration(batch)
    terms, _ = trainer.loss_terms(batch, [0, 1, 2], out)
    close(terms["epo_band"], 0.8 * 0.01 * 0.5 * 3.35 / 8)
    # no history at all (first iteration): no band penalty anywhere
    trainer.entropy_history = EntropyHistory()
    trainer.begin_epo_iteration(batch)
    terms, stats = trainer.loss_terms(batch, [0, 1, 2], out)
    close(terms["epo_band"], 0.0)
    close(stats["epo/outside_band_frac"], 0.0)


def test_history_update_counts_each_row_once_and_uses_only_past_iterations(trainer: EPOGRPOTrainer) -> None:
    trainer.entropy_history = EntropyHistory()
    trainer.step = 0
    ent = [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [5.0, 5.0, 5.0]]
    batch, out = synthetic(ent, [2, 1, 3], [0, 0, 1])
    trainer.begin_epo_iteration(batch)
    for rows in ([1], [0, 1], [2], [0, 1, 2]):  # micro-batches, then a second epoch: each row counts once
        trainer.loss_terms(batch, rows, TokenLogprobs(out.logprobs[rows], out.entropy[rows], out.mask[rows]))
    # turn 0: tokens (1, 2) and (3) -> 2; turn 1: (5, 5, 5) -> 5 (the core's EntropyHistory.turn_means)
    assert trainer.turn_entropy(batch) == pytest.approx({0: 2.0, 1: 5.0})
    assert trainer.turn_entropy(batch) == pytest.approx(
        EntropyHistory.turn_means(out.entropy.detach(), out.mask, batch.turn_idx))
    assert trainer.entropy_history.reference(0) is None  # this iteration's entropy is not its own reference
    metrics: dict[str, float] = {}
    trainer.on_step_end(batch, metrics)
    assert trainer.entropy_history.reference(0) == pytest.approx(2.0)
    assert math.isnan(batch.extras[ENTROPY_REF][0])  # the reference used during the iteration stays fixed

    # a second iteration: Hbar_0 = (2 + 4) / 2 = 3 (all history), Hbar_1 = 5
    batch2, out2 = synthetic([[4.0, 4.0], [7.0, 7.0]], [2, 2], [0, 2])
    trainer.begin_epo_iteration(batch2)
    close(batch2.extras[ENTROPY_REF][0], 2.0)
    trainer.loss_terms(batch2, [0, 1], out2)
    trainer.on_step_end(batch2, {})
    assert trainer.entropy_history.reference(0) == pytest.approx(3.0)
    assert trainer.entropy_history.reference(1) == pytest.approx(5.0)
    assert trainer.entropy_history.reference(2) == pytest.approx(7.0)


def test_phase_weight_schedule_at_known_points(trainer: EPOGRPOTrainer) -> None:
    # E = 10: e = 0 -> 1; 2.5 -> 1 - .2 (1 - e^-1); 5 -> .8; 7.5 -> .8 e^-1.5; 9 -> .8 e^-2.4
    expected = {0: 1.0, 5: 0.8, 9: 0.8 * math.exp(-2.4)}
    for e, w in expected.items():
        trainer.step = e
        assert trainer.phase_weight() == pytest.approx(w)
    assert trainer.phase_weight(2.5) == pytest.approx(1 - 0.2 * (1 - math.exp(-1)))  # type: ignore[arg-type]
    assert trainer.phase_weight(7.5) == pytest.approx(0.8 * math.exp(-1.5))  # type: ignore[arg-type]
    trainer.config.epo_phase_weighting = False
    try:
        assert trainer.phase_weight() == 1.0
    finally:
        trainer.config.epo_phase_weighting = True
    # measured in env steps: e / E = 50 / 100 -> .8, 25 / 100 -> 1 - .2 (1 - e^-1)
    trainer.config.epo_schedule_env_steps, trainer.env_steps_total = 100, 50
    try:
        assert trainer.phase_weight() == pytest.approx(0.8)
        trainer.env_steps_total = 25
        assert trainer.phase_weight() == pytest.approx(1 - 0.2 * (1 - math.exp(-1)))
    finally:
        trainer.config.epo_schedule_env_steps, trainer.env_steps_total = None, 0
    assert EPOConfig(iterations=40).schedule_iterations == 40


# ----------------------------------------------------------------------------- baseline equality, gradients


def ready_batch(tr: Trainer) -> RLBatch:
    """One iteration's batch up to the update (collect, score, advantages, weights)."""
    batch = tr.make_batch(tr.collect(tr.sample_tasks())[0])
    batch.rewards = tr.score(batch)
    batch.adv_output = tr.compute_advantages(batch)
    batch.advantages = tr.token_advantages(batch, batch.adv_output)
    batch.weights = tr.loss_weights(batch)
    return batch


def loss_and_grads(tr: Trainer, batch: RLBatch) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    tr.policy.model.zero_grad(set_to_none=True)
    rows = list(range(len(batch)))
    out = tr.policy.forward_logprobs(batch.prompt_ids, batch.response_ids, with_entropy=True)
    terms, _ = tr.loss_terms(batch, rows, out)
    sum(terms.values()).backward()
    grads = [p.grad.clone() for p in tr.policy.parameters()]
    tr.policy.model.zero_grad(set_to_none=True)
    return terms, grads


@pytest.mark.parametrize("base", ["grpo", "ppo"])
def test_zero_coefficients_is_exactly_the_baseline(base: str, model_dir: str, tmp_path: Path) -> None:
    # c_H = 0 (beta and alpha at their defaults: the band is computed and multiplied by 0)
    epo_cfg = EPOConfig(**small(model_dir, tmp_path / "epo", base=base, entropy_coef=0.0))
    epo = make_trainer(epo_cfg)
    baseline = BASELINES[base](epo_cfg.base_config(output_dir=str(tmp_path / "base")))
    assert type(baseline) is BASELINES[base] and baseline.config.entropy_coef == 0.0
    for _ in range(2):  # the second iteration has an entropy history, so the band path is live
        m_epo, m_base = epo.train_step(), baseline.train_step()
        epo.step += 1
        baseline.step += 1
        for key in ("losses/total", "losses/policy", "losses/kl", "env/return", "policy/grad_norm"):
            assert m_epo[key] == m_base[key], key
        for p, q in zip(epo.policy.parameters(), baseline.policy.parameters(), strict=True):
            assert torch.equal(p, q)
    assert epo.entropy_history.reference(0) is not None and "losses/epo_band" in m_epo
    batch = ready_batch(baseline)
    epo.begin_epo_iteration(batch)
    assert bool((~torch.isnan(batch.extras[ENTROPY_REF])).any())
    terms_epo, g_epo = loss_and_grads(epo, batch)
    terms_base, g_base = loss_and_grads(baseline, batch)
    assert torch.equal(sum(terms_epo.values()), sum(terms_base.values()))
    assert all(torch.equal(a, b) for a, b in zip(g_epo, g_base, strict=True))


def mean_entropy(tr: Trainer, batch: RLBatch) -> tuple[float, dict[int, float]]:
    with torch.no_grad():
        out = tr.policy.forward_logprobs(batch.prompt_ids, batch.response_ids, with_entropy=True)
    return float(out.entropy[batch.mask].mean()), EntropyHistory.turn_means(out.entropy, batch.mask, batch.turn_idx)


def test_active_penalty_changes_gradients_and_moves_entropy_into_the_band(trainer: EPOGRPOTrainer) -> None:
    trainer.step = 0
    batch = ready_batch(trainer)
    cfg = trainer.config
    head = trainer.policy.model.get_output_embeddings().weight
    params = trainer.policy.parameters()
    with torch.no_grad():  # sharper next-token distributions than the near-uniform untrained model (H ~ log V)
        head.mul_(8.0)
    try:
        before, means = mean_entropy(trainer, batch)
        for scale, direction in ((0.1, -1.0), (10.0, +1.0)):  # every token above the band / below it
            trainer.entropy_history = EntropyHistory()
            trainer.entropy_history.update({k: scale * h for k, h in means.items()})
            trainer.begin_epo_iteration(batch)
            cfg.epo_alpha = 0.0
            _, g_off = loss_and_grads(trainer, batch)
            cfg.epo_alpha = 1.0
            terms, g_on = loss_and_grads(trainer, batch)
            assert float(terms["epo_band"].detach()) > 0
            diff = [a - b for a, b in zip(g_on, g_off, strict=True)]  # the band term's gradient
            norm = float(torch.cat([d.flatten() for d in diff]).norm())
            assert norm > 0  # the penalty changes the update
            # a small descent step on the band term alone moves the mean entropy towards the band
            with torch.no_grad():
                for p, d in zip(params, diff, strict=True):
                    p.sub_(d, alpha=0.05 / norm)
            after, _ = mean_entropy(trainer, batch)
            with torch.no_grad():
                for p, d in zip(params, diff, strict=True):  # undo the step
                    p.add_(d, alpha=0.05 / norm)
            assert (after - before) * direction > 0, (scale, before, after)
    finally:
        cfg.epo_alpha = 0.5
        trainer.entropy_history = EntropyHistory()
        with torch.no_grad():
            head.div_(8.0)


# ------------------------------------------------------------------------------------------- end to end


def test_end_to_end_run_logs_epo_metrics_and_resumes_exactly(model_dir: str, tmp_path: Path) -> None:
    args = ["--model", model_dir, "--tasks-per-iteration", "2", "--group-size", "2", "--num-envs", "4",
            "--max-turns", "3", "--max-new-tokens", "8", "--sft-episodes", "0", "--eval-split", "none",
            "--no-tensorboard", "--no-progress-bar", "--no-save-final-model", "--transcripts-every", "0",
            "--epo-schedule-iterations", "3", "--epo-kappa-lo", "0.9", "--epo-kappa-hi", "1.05"]
    straight = make_trainer(config_from_args(EPOConfig, [*args, "--output-dir", str(tmp_path / "a"), "--iterations", "3"]))
    final = straight.train()
    keys = {"epo/entropy_turn_0", "epo/ref_turn_0", "epo/ref_entropy", "epo/outside_band_frac", "epo/phase_weight",
            "epo/band_penalty", "losses/epo_band", "losses/entropy_bonus"}
    assert keys <= set(final) and all(math.isfinite(final[k]) for k in keys)
    records = {r["step"]: r for r in read_metrics(tmp_path / "a" / "metrics.jsonl")}
    assert {1, 2, 3} <= set(records)
    assert "epo/ref_entropy" not in records[1] and "epo/ref_entropy" in records[2]  # no history in iteration 1
    assert records[1]["epo/phase_weight"] == pytest.approx(1.0)
    assert records[3]["epo/phase_weight"] == pytest.approx(0.8 * math.exp(-1))  # e = 2 of E = 3
    state = json.loads((latest_checkpoint(tmp_path / "a" / "checkpoints") / "trainer_state.json").read_text())
    assert state["trainer"]["epo_history"] == straight.entropy_history.state_dict()

    first = make_trainer(config_from_args(EPOConfig, [*args, "--output-dir", str(tmp_path / "b"), "--iterations", "2"]))
    first.train()
    resumed = make_trainer(config_from_args(EPOConfig, [*args, "--output-dir", str(tmp_path / "b"), "--iterations", "3",
                                                        "--resume"]))
    assert resumed.entropy_history.state_dict() == EntropyHistory().state_dict()
    last = resumed.train()
    assert resumed.entropy_history.state_dict() == straight.entropy_history.state_dict()
    for key in keys:
        assert last[key] == final[key], key
    for p, q in zip(resumed.policy.parameters(), straight.policy.parameters(), strict=True):
        assert torch.equal(p, q)


# ------------------------------------------------------------------------------------------ distributed

DDP_SCRIPT = """
import hashlib, json, sys
import torch
torch.set_num_threads(1)
from trainers.epo import EPOConfig, make_trainer

out, model = sys.argv[1], sys.argv[2]
trainer = make_trainer(EPOConfig(output_dir=out, model=model, iterations=2, tasks_per_iteration=2, group_size=2,
                                 num_envs=4, max_turns=3, max_new_tokens=8, eval_split=None, progress_bar=False,
                                 tensorboard=False, save_final_model=False, transcripts_every=0, lr=1e-3))
from trainers.epo.trainer import ENTROPY_COUNT, ENTROPY_SUM
local = []
end = trainer.on_step_end
def spy(batch, metrics):  # this process's own per-turn sums and counts (before the all-reduce)
    n = trainer.config.max_turns
    sums = torch.zeros(n, dtype=torch.float64).index_add_(0, batch.turn_idx, batch.extras[ENTROPY_SUM])
    counts = torch.zeros(n, dtype=torch.float64).index_add_(0, batch.turn_idx, batch.extras[ENTROPY_COUNT])
    local.append((sums.tolist(), counts.tolist()))
    end(batch, metrics)
trainer.on_step_end = spy
trainer.train()
h = hashlib.sha256()
for name, p in sorted(trainer.policy.model.state_dict().items()):
    h.update(name.encode()); h.update(p.detach().cpu().contiguous().numpy().tobytes())
with open(f"{out}/rank{trainer.rank}.json", "w") as fh:
    json.dump({"world": trainer.accelerator.num_processes, "weights": h.hexdigest(), "local": local,
               "history": trainer.entropy_history.state_dict()}, fh)
"""


@pytest.mark.slow
def test_two_processes_share_one_history_and_stay_identical(model_dir: str, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(script), str(tmp_path / "out"), model_dir]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    a, b = (json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    assert a["weights"] == b["weights"] and a["history"] == b["history"]
    assert a["local"] != b["local"]  # the processes played different tasks...
    # ...and the history holds the means over both: Hbar_tau = mean over iterations of sum_r s / sum_r c
    expected: dict[int, list[float]] = {}
    for (sa, ca), (sb, cb) in zip(a["local"], b["local"], strict=True):
        for tau, (x, y, n, m) in enumerate(zip(sa, sb, ca, cb, strict=True)):
            if n + m > 0:
                expected.setdefault(tau, []).append((x + y) / (n + m))
    history = EntropyHistory()
    history.load_state_dict(a["history"])
    assert set(expected) == {int(k) for k in a["history"]["count"]}
    for tau, values in expected.items():
        assert history.reference(tau) == pytest.approx(sum(values) / len(values))
