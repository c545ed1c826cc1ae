"""Trainer speed on a real model: sampling, rollouts and training, measured side by side in one run.

    python -m trainers.bench --model smollm2                          # CPU: SmolLM2-135M-Instruct (from its wheel)
    python -m trainers.bench --model smollm2 --out docs/benchmarks.md  # also rewrite the "Trainer speed" section
    python -m trainers.bench --device cuda --shape qwen2.5-0.5b        # a GPU: a model built from a config (random
                                                                      # weights, nothing downloaded), bf16 autocast

What it measures, each a median over ``--repeats`` runs on the same inputs:

* **sampling**: ``Policy.generate`` (our batched, KV-cached loop that also returns the unscaled log-probs and
  entropies trainers need) against ``model.generate`` (transformers) on the same batch of real env prompts, the
  same number of new tokens (eos disabled in both, so both produce exactly ``--new-tokens`` per prompt), the
  same temperature 1; tokens/s = generated tokens / wall time;
* **rollouts**: a ``RolloutCollector`` wave on ``--envs`` PilotALFWorldSmall envs, ``--turns`` turns: generated
  tokens/s and the env's share of the wall time;
* **training**: forward + backward of ``--batch`` collected turns through ``Policy.forward_logprobs``
  (micro-batched as the trainers do), full weights and LoRA (r=16): trained tokens/s (prompt + response tokens,
  padded);
* **memory**: peak RSS (CPU) or peak allocated GPU memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pilot_envs.bench import cpu_name
from pilot_envs.docs import write_marked

__all__ = ["SHAPES", "main", "run"]

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                         tie_word_embeddings=True),
}
"""Model shapes built from a config with random weights (``--shape``): speed and memory need no trained weights."""

MARK_START, MARK_END = "<!-- trainer-speed:start -->", "<!-- trainer-speed:end -->"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Any, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _policy(args: argparse.Namespace, lora: bool = False) -> Any:
    from trainers.core.models import resolve_model
    from trainers.core.policy import LoraSpec, Policy

    device = torch.device(args.device)
    spec = LoraSpec(r=16, alpha=32) if lora else None
    if args.shape:
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        from trainers.core.policy import _apply_lora

        tok_dir = resolve_model("smollm2")  # a real BPE tokenizer with a chat template, for real prompt lengths
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        torch.manual_seed(0)
        shape = dict(SHAPES[args.shape])
        shape["vocab_size"] = max(shape["vocab_size"], len(tokenizer))
        model = LlamaForCausalLM(LlamaConfig(**shape, pad_token_id=tokenizer.pad_token_id)).to(device)
        if spec is not None:
            model = _apply_lora(model, spec, 0)
        return Policy(model.eval(), tokenizer)
    return Policy.from_pretrained(resolve_model(args.model, args.cache_dir, gguf_file=args.gguf_file), device=device,
                                  lora=spec)


def _prompts(policy: Any, n: int, max_prompt_tokens: int) -> tuple[list[list[int]], Any]:
    import gymnasium as gym

    import pilot_envs  # noqa: F401
    from trainers.core.rollout import AgentSpec, PromptRenderer

    agent = AgentSpec(prompt_format="think_action", history_window=1, max_prompt_tokens=max_prompt_tokens,
                      instructions_in_system=policy.has_system_role())
    render = PromptRenderer(policy, agent)
    env = gym.make("PilotALFWorldSmall-v0")
    prompts = []
    for i in range(n):
        obs, _ = env.reset(seed=i, options={"split": "valid_unseen", "task_index": i})
        prompts.append(render(obs, [], None))
    env.close()
    return prompts, agent


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of the module docstring; returns the numbers (and prints progress lines)."""
    from dataclasses import replace

    import gymnasium as gym

    from trainers.core.rollout import RolloutCollector, TaskSpec

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else None
    policy = _policy(args)
    n_params = sum(p.numel() for p in policy.model.parameters())
    prompts, agent = _prompts(policy, args.batch, args.max_prompt_tokens)
    prompt_tokens = statistics.mean(len(p) for p in prompts)
    out: dict[str, Any] = {"params": n_params, "prompt_tokens": prompt_tokens, "batch": args.batch,
                           "new_tokens": args.new_tokens}
    ctx = autocast or (lambda: torch.autocast("cpu", enabled=False))

    # --- sampling: ours vs transformers' generate, eos disabled in both (exactly new_tokens per prompt)
    eos = policy.eos_token_ids
    policy.eos_token_ids = frozenset()
    with ctx():
        ours = _median_time(lambda: policy.generate(prompts, max_new_tokens=args.new_tokens, temperature=1.0, seed=0),
                            args.repeats, device)
    policy.eos_token_ids = eos
    ids, attn, _ = policy._batch(prompts)
    hf_kwargs = dict(input_ids=ids, attention_mask=attn, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                     max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=policy.pad_token_id,
                     return_dict_in_generate=True, output_logits=True)
    with ctx(), torch.no_grad():
        hf = _median_time(lambda: policy.model.generate(**hf_kwargs), args.repeats, device)
    generated = args.batch * args.new_tokens
    out["sample_ours_tok_s"], out["sample_hf_tok_s"] = generated / ours, generated / hf
    print(f"sampling: ours {generated / ours:.1f} tok/s, transformers generate {generated / hf:.1f} tok/s",
          file=sys.stderr, flush=True)

    # --- rollouts on real envs
    envs = [gym.make("PilotALFWorldSmall-v0") for _ in range(args.envs)]
    collector = RolloutCollector(policy, envs, replace(agent, max_new_tokens=args.new_tokens, max_turns=args.turns),
                                 generator=torch.Generator(device=device).manual_seed(0), autocast=autocast)
    tasks = [TaskSpec(i, {"split": "train"}) for i in range(args.envs)]
    trajs, stats = collector.collect(tasks)
    for env in envs:
        env.close()
    out["rollout_tok_s"] = stats.generated_tokens / max(stats.total_s, 1e-9)
    out["env_share"] = stats.env_s / max(stats.total_s, 1e-9)
    out["rollout_turns"] = stats.env_steps
    print(f"rollouts: {out['rollout_tok_s']:.1f} generated tok/s over {stats.env_steps} turns, env share "
          f"{100 * out['env_share']:.2f}%", file=sys.stderr, flush=True)

    # --- training: forward + backward of the collected turns, full weights then LoRA
    turns = [t for tr in trajs for t in tr.turns][: args.batch]  # a training batch of --batch turns
    p_ids, r_ids = [t.prompt_ids for t in turns], [t.response_ids for t in turns]
    for name, pol in (("full", policy), ("lora", _policy(args, lora=True))):
        pol.train(True)
        tokens = sum(mb.num_tokens for mb in pol.iter_micro_batches(p_ids, r_ids, args.micro_batch_tokens))

        def step(pol: Any = pol) -> None:
            for mb in pol.iter_micro_batches(p_ids, r_ids, args.micro_batch_tokens):
                with ctx():
                    o = pol.forward_logprobs(mb.prompt_ids, mb.response_ids, with_entropy=True)
                (-(o.logprobs * o.mask).sum() / max(1, int(o.mask.sum()))).backward()
            pol.model.zero_grad(set_to_none=True)

        seconds = _median_time(step, args.repeats, device)
        out[f"train_{name}_tok_s"] = tokens / seconds
        print(f"training ({name}): {tokens / seconds:.1f} tok/s ({tokens} padded tokens per step)", file=sys.stderr,
              flush=True)
    out["peak_mb"] = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                      else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def section(args: argparse.Namespace, r: dict[str, Any], argv: list[str]) -> str:
    """The Markdown section of docs/benchmarks.md for one run."""
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu_name()}, {args.threads} thread(s)"
    what = f"{args.shape} shape, random weights" if args.shape else args.model
    cmd = " ".join(["python -m trainers.bench", *argv])
    if args.out:
        cmd = cmd.replace(f" --out {args.out}", "")
    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {dev}: {what} ({r['params'] / 1e6:.0f} M parameters), batch "
        f"{r['batch']} prompts of {r['prompt_tokens']:.0f} tokens on average (PilotALFWorldSmall, think_action), "
        f"{r['new_tokens']} new tokens each; medians of {args.repeats} runs.",
        f"Reproduce: `{cmd}`",
        "",
        "| measurement | tokens/s | notes |",
        "|---|---:|---|",
        f"| sampling, ours (`Policy.generate`) | {r['sample_ours_tok_s']:.1f} | also returns log-probs and entropies |",
        f"| sampling, transformers `model.generate` | {r['sample_hf_tok_s']:.1f} | same batch, tokens, temperature |",
        f"| rollouts ({args.envs} envs x {args.turns} turns) | {r['rollout_tok_s']:.1f} | env share of wall time "
        f"{100 * r['env_share']:.2f}% |",
        f"| training, full weights (forward + backward) | {r['train_full_tok_s']:.1f} | prompt + response tokens |",
        f"| training, LoRA r=16 | {r['train_lora_tok_s']:.1f} | |",
        f"| peak memory | {r['peak_mb']:.0f} MB | {'GPU allocated' if args.device == 'cuda' else 'process RSS'} |",
    ])


def write_section(path: Path, text: str) -> None:
    """Replace the trainer-speed section of ``path`` (appended, under its heading, when missing), atomically."""
    write_marked(path, MARK_START, MARK_END, text + "\n", heading="## Trainer speed on a real model\n\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="anything --model takes (default: smollm2)")
    p.add_argument("--gguf-file", default=None)
    p.add_argument("--cache-dir", default=None, help="where tiny builds and converted GGUF models are cached")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="a model built from a config instead")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--max-prompt-tokens", type=int, default=1024)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--micro-batch-tokens", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="rewrite the trainer-speed section of this Markdown file")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.out is not None and not Path(args.out).is_file():
        p.error(f"--out {args.out}: no such file")
    r = run(args)
    text = section(args, r, argv)
    print(text)
    if args.out:
        write_section(Path(args.out), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
