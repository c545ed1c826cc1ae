"""GRPO learns: on a trivial text env ("say the magic word from the admissible list") the reward rises within
about a minute of CPU training, starting from an SFT warm start on an expert that picks words at random."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pilot_envs.core.contract import TextEnv
from pilot_envs.core.protocol import parse_action
from trainers.core.logger import read_metrics
from trainers.grpo import GRPOConfig, GRPOTrainer

WORDS = ("apple", "banana", "cherry", "grape")
MAGIC = "banana"


class MagicWordEnv(gym.Env):
    """One-step env: the agent must say the magic word (``banana``); the admissible list is shuffled per
    seed. The 'expert' says a random admissible word, so SFT teaches the format, not the answer.

    Not a pilot-envs env: it satisfies the trainer contract (``pilot_envs.core.contract.TextEnv``) with five
    members, which is all a user's own env needs to train with every method."""

    domain = "a word game"
    noop_action = "look"
    plan_mode = "none"

    def splits(self) -> dict[str, int]:
        return {}

    def set_plan_mode(self, mode: str) -> None:
        self.plan_mode = mode

    def __init__(self, **_: Any) -> None:
        self.observation_space = gym.spaces.Dict({"text": gym.spaces.Text(64)})
        self.action_space = gym.spaces.Text(64)
        self._words: list[str] = list(WORDS)

    def _obs(self, text: str) -> dict[str, Any]:
        return {"text": text, "task": "say the magic word", "plan": (), "admissible_commands": tuple(self._words)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._words = list(self.np_random.permutation(WORDS))
        pick = self._words[int(self.np_random.integers(len(WORDS)))]
        return self._obs("Say the magic word."), {"expert_action": pick, "state_hash": "start", "task_type": "magic",
                                                  "task_id": f"magic/{seed}"}

    def step(self, action: str):
        command = parse_action(action).command or ""
        won = command == MAGIC
        info = {"won": won, "progress": float(won), "action_valid": command in WORDS, "format_ok": True,
                "command": command, "state_hash": "end", "expert_action": None}
        return self._obs("Correct!" if won else "Wrong."), float(won), True, False, info


def test_grpo_raises_the_reward_on_a_trivial_env(tmp_path: Path) -> None:
    cfg = GRPOConfig(
        output_dir=str(tmp_path / "run"), model_cache_dir=str(tmp_path / "cache"), train_split=None, eval_split=None,
        iterations=16, tasks_per_iteration=4, group_size=8, num_envs=32, max_turns=1, max_new_tokens=8,
        prompt_format="think_action", instruction="Answer with <action>word</action>.", history_window=0,
        tiny_hidden=32, tiny_layers=1, tiny_heads=2, tiny_corpus_episodes=8, sft_episodes=64, sft_steps=60, sft_think="none",
        sft_batch_size=16, sft_lr=1e-2, lr=5e-3, kl_coef=0.0, progress_bar=False, tensorboard=False,
        save_final_model=False, transcripts_every=0,
    )
    assert isinstance(MagicWordEnv(), TextEnv)
    trainer = GRPOTrainer(cfg, env_fn=MagicWordEnv)
    trainer.train()
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "env/success_rate" in r]
    first = np.mean([r["env/success_rate"] for r in records[:3]])
    last = np.mean([r["env/success_rate"] for r in records[-3:]])
    assert 0.1 < first < 0.6, f"after SFT the policy says a random word (~0.25), got {first}"
    assert last > max(0.8, first + 0.4), f"GRPO must learn the magic word: {first:.2f} -> {last:.2f}"
    assert records[-1]["env/invalid_action_rate"] < 0.2
