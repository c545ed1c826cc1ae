"""PPO trainer: the separate critic (values at the last prompt token, padding-invariant), GAE inputs with
bootstrapped truncations, critic and actor both updated, checkpoint contents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.core.checkpoint import latest_checkpoint
from trainers.core.logger import read_metrics
from trainers.core.value import ValueModel
from trainers.ppo import PPOConfig, PPOTrainer


def small(tmp: Path, **kw) -> PPOConfig:
    base = dict(
        output_dir=str(tmp / "run"), model_cache_dir=str(tmp.parent / "tiny-cache"), iterations=2,
        tasks_per_iteration=4, num_envs=4, max_turns=3, max_new_tokens=12, history_window=1, tiny_hidden=32,
        tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=20, sft_episodes=0, lr=1e-3, critic_lr=1e-2,
        eval_split=None, progress_bar=False, tensorboard=False, save_final_model=False,
    )
    return PPOConfig(**{**base, **kw})


def test_ppo_config_validation() -> None:
    with pytest.raises(ValueError, match="critic_lr"):
        PPOConfig(critic_lr=0)
    with pytest.raises(ValueError, match="value_clip"):
        PPOConfig(value_clip=0)
    assert PPOConfig().advantage == "gae" and PPOConfig().normalize_advantages


def test_ppo_trains_actor_and_critic(tmp_path: Path) -> None:
    cfg = small(tmp_path, ppo_epochs=2, mini_batches=2)
    trainer = PPOTrainer(cfg)
    assert isinstance(trainer.critic, ValueModel)
    critic0 = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    policy0 = {k: v.clone() for k, v in trainer.policy.model.state_dict().items()}
    # the critic trunk starts as a copy of the policy trunk, with separate storage
    trunk = trainer.policy.model.model
    assert all(torch.equal(v, trunk.state_dict()[k]) for k, v in trainer.critic.trunk.state_dict().items())
    assert trainer.critic.trunk.embed_tokens.weight.data_ptr() != trunk.embed_tokens.weight.data_ptr()
    last = trainer.train()
    for key in ("losses/value", "value/explained_variance", "value/mean", "value/grad_norm", "losses/policy", "losses/kl"):
        assert key in last, key
    assert any(not torch.equal(critic0[k], v) for k, v in trainer.critic.state_dict().items())
    assert any(not torch.equal(policy0[k], v) for k, v in trainer.policy.model.state_dict().items())
    assert [r["step"] for r in read_metrics(Path(cfg.output_dir) / "metrics.jsonl")] == [1, 2]
    ckpt = latest_checkpoint(Path(cfg.output_dir) / "checkpoints")
    assert ckpt is not None and (ckpt / "critic.safetensors").exists() and (ckpt / "ref.safetensors").exists()


def test_values_and_gae_inputs(tmp_path: Path) -> None:
    trainer = PPOTrainer(small(tmp_path, max_turns=2))
    torch.nn.init.normal_(trainer.critic.heads.weight, std=0.5)  # non-trivial values
    batch = trainer.make_batch(trainer.collect(trainer.sample_tasks())[0])
    batch.rewards = trainer.score(batch)
    tb = trainer.advantage_batch(batch)
    assert tb.values is not None and tb.last_values is not None
    # values at the last prompt token do not depend on padding (batched == one at a time)
    one = torch.cat([trainer.critic_values([p]) for p in batch.prompt_ids[:3]])[:, 0]
    assert torch.allclose(tb.values[:3], one, atol=1e-5)
    i = 0
    for traj in batch.trajectories:
        i += len(traj)
        if traj.terminated:
            assert tb.last_values[i - 1] == 0
        else:  # truncated at max_turns: bootstrap from the prompt that would come next
            assert traj.next_prompt_ids is not None
            expected = trainer.critic_values([traj.next_prompt_ids])[0, 0]
            assert float(tb.last_values[i - 1]) == pytest.approx(float(expected), abs=1e-5)
    adv = trainer.compute_advantages(batch)
    assert adv.returns is not None and abs(float(adv.advantages.mean())) < 1e-5  # standardised
    # returns = raw GAE + V: with lam = 0.95 and gamma = 1 they are computed before standardisation
    raw = type(trainer.config)(**{**trainer.config.__dict__, "normalize_advantages": False})
    trainer.config = raw
    unnorm = trainer.compute_advantages(batch)
    assert torch.allclose(unnorm.returns, unnorm.advantages + tb.values, atol=1e-5)
