"""Batched multi-turn rollouts: N envs in lockstep, one ``Policy.generate`` call per turn.

Each turn is its own training sample with the short-history prompt (the verl-agent convention, docs/methods.md): the
prompt shows the task, the last ``history_window`` (observation, action) pairs and the current observation;
the response is what the policy wrote. Records are typed: a :class:`Turn` per LLM response, a
:class:`Trajectory` per episode, and :func:`turn_batch` turns trajectories into the
:class:`~trainers.core.advantages.TurnBatch` the registered advantage estimators read.

Group sampling: :func:`expand_groups` repeats each :class:`TaskSpec` G times (same reset seed and options,
so the same task) with a shared ``group_id``. :class:`RolloutCollector` runs any number of tasks on its
envs, in waves of ``len(envs)``.

Envs are a list of Gymnasium envs (each reset with its own seed and options) or a Gymnasium vector env
(reset with a list of seeds and one options dict, so every task of a wave must share ``options``; the
seed then picks the task, e.g. ``options={"split": "train"}``). Finished envs of a vector env are stepped
with the env's ``noop_action`` (``pilot_envs.core.contract``) and their results ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pilot_envs.core.protocol import parse_action
from trainers.core.advantages import TurnBatch
from trainers.core.policy import Generation, Sampler
from trainers.core.prompts import PromptFormat, PromptOptions, get_format, render_messages, turn_instruction
from trainers.core.tree import TreeSpec, branch, group_waves, plant

__all__ = [
    "AgentSpec",
    "PromptRenderer",
    "RolloutCollector",
    "RolloutStats",
    "TaskSpec",
    "Trajectory",
    "Turn",
    "expand_groups",
    "turn_batch",
]


@dataclass(frozen=True)
class TaskSpec:
    """One task to play: ``env.reset(seed=seed, options=options)``; ``group_id`` ties a group together."""

    seed: int
    options: Mapping[str, Any] | None = None
    group_id: int = 0


def expand_groups(tasks: Sequence[TaskSpec], group_size: int, first_group: int = 0) -> list[TaskSpec]:
    """Each task repeated ``group_size`` times (consecutively) with group ids ``first_group, ...``."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    return [replace(t, group_id=first_group + g) for g, t in enumerate(tasks) for _ in range(group_size)]


@dataclass(frozen=True)
class AgentSpec:
    """How the agent talks: prompt format, prompt options and sampling settings."""

    prompt_format: str = "think_action"
    """A name in ``trainers.core.prompts.FORMATS``."""
    history_window: int = 2
    include_admissible: bool = True
    include_plan: bool | None = None
    max_prompt_tokens: int = 1024
    """Prompts over this many tokens drop old history, then admissible commands (never the task)."""
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop_strings: tuple[str, ...] = ()
    max_turns: int = 50
    """Turn cap per episode (a trajectory cut here is truncated, like a TimeLimit)."""
    system: str | None = None
    task_reminder: bool = False
    """Repeat the task sentence at the very end of the user message. Attention with rotary positions finds
    text at a fixed distance far more easily than at a fixed absolute position, so small models learn to
    condition on the task much faster (measured with the tiny model: see docs/trainers/grpo.md)."""
    instruction: str | None = None
    """Replaces the format's per-turn instruction (e.g. a one-line reminder, to keep a small model's prompts
    short; a plan-writing turn keeps the format's plan instruction); None keeps the format's own."""
    instructions_in_system: bool = False
    """The turn's answer instruction goes in a system message (chat models with a system role) instead of at the
    end of the user message."""
    domain: str = "a text-based embodied environment"
    """The env's world in a few words ("You are an expert agent operating in {domain}"): the env contract's
    ``domain`` (``pilot_envs.core.contract.TextEnv``)."""

    def prompt_format_spec(self) -> PromptFormat:
        """The :class:`PromptFormat` to render (the named format with ``instruction`` applied)."""
        fmt = get_format(self.prompt_format)
        if self.instruction is None:
            return fmt
        return replace(fmt, instruction=self.instruction)

    def prompt_options(self, length_fn: Callable[[str], int]) -> PromptOptions:
        return PromptOptions(
            history_window=self.history_window,
            include_admissible=self.include_admissible,
            include_plan=self.include_plan,
            system=self.system,
            instructions_in_system=self.instructions_in_system,
            environment=self.domain,
            max_length=self.max_prompt_tokens - 16,  # room for the chat template around the user message
            length_fn=length_fn,
        )


INFO_FIELDS = ("progress", "plan_score", "plan_step", "action_valid", "format_ok", "won")


@dataclass
class Turn:
    """One LLM response and the env step it caused."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    """Aligned with ``response_ids``: 1 on policy tokens the trainer may train (every sampled token)."""
    old_logprobs: list[float]
    """Per response token, under the sampling policy's unscaled distribution (see ``Policy.generate``)."""
    reward: float
    """The env reward of this step (trainers add their own terms in ``score``)."""
    done: bool
    """The episode terminated at this turn (solved or lost); False when truncated."""
    truncated: bool
    turn_idx: int
    traj_id: int
    group_id: int
    response_text: str
    observation: str
    """The observation text the response answered."""
    command: str
    """What the env executed (``info["command"]``; empty for think-only/plan-only/unparseable turns)."""
    state_hash: str
    """Hash of the state the turn acted in (GiGPO's anchor state), from the previous step's info."""
    progress: float
    """Progress after the step."""
    plan_score: float
    plan_step: int
    action_valid: bool
    format_ok: bool
    won: bool
    finished: bool
    """The response ended by itself (eos/stop), not at ``max_new_tokens``."""
    entropy: float = 0.0
    """Mean token entropy of the response under the sampling policy's unscaled distribution (nats)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What a method's collector records on the turn (:meth:`RolloutCollector.turn_extras`), under its keys."""

    @property
    def input_ids(self) -> list[int]:
        return [*self.prompt_ids, *self.response_ids]

    def full_mask(self) -> list[int]:
        """Mask over :attr:`input_ids`: 0 on prompt (env) tokens, ``response_mask`` on the response."""
        return [0] * len(self.prompt_ids) + list(self.response_mask)


@dataclass
class Trajectory:
    """One episode: its task, turns and outcome."""

    traj_id: int
    group_id: int
    task: TaskSpec
    turns: list[Turn] = field(default_factory=list)
    won: bool = False
    terminated: bool = False
    truncated: bool = False
    task_type: str = ""
    task_id: str = ""
    next_prompt_ids: list[int] | None = None
    """The prompt after the last turn when the episode was cut (bootstraps a critic); None if terminated."""

    @property
    def progress(self) -> float:
        return self.turns[-1].progress if self.turns else 0.0

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    def __len__(self) -> int:
        return len(self.turns)


@dataclass
class RolloutStats:
    """Timing and counts of one :meth:`RolloutCollector.collect` call."""

    generated_tokens: int = 0
    generate_s: float = 0.0
    env_s: float = 0.0
    total_s: float = 0.0
    env_steps: int = 0

    def add(self, other: RolloutStats) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


# ------------------------------------------------------------------------------------------- env access
class _Slots:
    """Uniform access to a list of envs or a vector env: reset some slots, step some slots."""

    def __init__(self, envs: Sequence[gym.Env] | gym.vector.VectorEnv) -> None:
        self.vector = isinstance(envs, gym.vector.VectorEnv)
        self.envs = envs
        self.n = envs.num_envs if self.vector else len(envs)
        if self.n < 1:
            raise ValueError("need at least one env")

    def reset(self, tasks: Sequence[TaskSpec]) -> list[tuple[dict, dict]]:
        if not self.vector:
            return [self.envs[i].reset(seed=t.seed, options=_opts(t)) for i, t in enumerate(tasks)]
        opts = {json.dumps(_opts(t), sort_keys=True, default=str) for t in tasks}
        if len(opts) > 1:
            raise ValueError("a vector env resets every sub-env with one options dict; use a list of envs "
                             "for tasks with different options (or let the seed pick the task)")
        seeds = [t.seed for t in tasks] + [tasks[-1].seed] * (self.n - len(tasks))
        obs, info = self.envs.reset(seed=seeds, options=_opts(tasks[0]))
        return [(_unbatch(obs, i), _unbatch_info(info, i)) for i in range(len(tasks))]

    def step(self, actions: Mapping[int, str]) -> dict[int, tuple[dict, float, bool, bool, dict]]:
        if not self.vector:
            out = {}
            for i, a in actions.items():
                obs, r, term, trunc, info = self.envs[i].step(a)
                out[i] = (obs, float(r), bool(term), bool(trunc), info)
            return out
        noop = self.envs.get_attr("noop_action")  # the env contract's no-op, for slots whose episode is over
        full = [actions.get(i, noop[i]) for i in range(self.n)]
        obs, r, term, trunc, info = self.envs.step(full)
        return {
            i: (_unbatch(obs, i), float(r[i]), bool(term[i]), bool(trunc[i]), _unbatch_info(info, i))
            for i in actions
        }


def _opts(t: TaskSpec) -> dict[str, Any] | None:
    return None if t.options is None else dict(t.options)


def _unbatch(obs: Any, i: int) -> Any:
    if isinstance(obs, Mapping):
        return {k: _unbatch(v, i) for k, v in obs.items()}
    return obs[i]


def _unbatch_info(info: Mapping[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in info.items() if not k.startswith("_") and info.get(f"_{k}", [True] * (i + 1))[i]}


def _text(x: Any) -> str:
    return str(x.item() if isinstance(x, np.ndarray) else x)


# ----------------------------------------------------------------------------------------------- prompts
class PromptRenderer:
    """Observation + history -> prompt token ids, the one rendering that rollouts and SFT share.

    ``renderer(obs, history, carried)`` renders :func:`~trainers.core.prompts.render_messages` in the
    agent's format (``carried``: the value of the format's carried part, if it has one), applies the chat
    template and tokenizes (user message budget in tokens, then a hard left cut at ``max_prompt_tokens``).
    """

    def __init__(self, policy: Sampler, agent: AgentSpec) -> None:
        self.policy = policy
        self.agent = agent
        tok = policy.tokenizer
        length = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
        self.format = agent.prompt_format_spec()
        options = agent.prompt_options(length)
        if options.instructions_in_system and options.max_length is not None:  # the system message takes its share
            longest = max(length(turn_instruction(self.format, {"plan": plan})) for plan in ((), ("x",)))
            options = replace(options, max_length=options.max_length - longest - 8)
        self.options = options

    def text(self, obs: Mapping[str, Any], history: Sequence[tuple[str, str]], carried: str | None) -> str:
        messages = render_messages(self.format, obs, history=history, carried=carried, options=self.options)
        if self.agent.task_reminder:
            messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\nYour task is to: {obs.get('task', '')}"}
        return self.policy.apply_chat_template(messages)

    def __call__(self, obs: Mapping[str, Any], history: Sequence[tuple[str, str]], carried: str | None) -> list[int]:
        return self.policy.encode([self.text(obs, history, carried)], max_tokens=self.agent.max_prompt_tokens)[0]


# --------------------------------------------------------------------------------------------- collector
@dataclass
class _Episode:
    traj: Trajectory
    obs: dict[str, Any]
    info: dict[str, Any]
    history: list[tuple[str, str]] = field(default_factory=list)
    carried: str | None = None
    active: bool = True
    waiting: bool = False
    """A tree rollout's episode that has not branched off its parent yet (:mod:`trainers.core.tree`)."""


class RolloutCollector:
    """Plays tasks with a policy on a set of envs, all active prompts in one batched ``generate`` per turn.

    A method that records more per turn subclasses it and overrides :meth:`turn_extras`.

    Args:
        policy: what to sample from (a :class:`~trainers.core.policy.Policy`, or any
            :class:`~trainers.core.policy.Sampler`).
        envs: a list of envs or a Gymnasium vector env.
        agent: prompt format and sampling settings.
        generator: torch generator for sampling (the trainer's, so a run is reproducible).
        autocast: a context-manager factory wrapped around ``generate`` (e.g. ``accelerator.autocast``).
        renderer: observation + history -> prompt ids (default: a :class:`PromptRenderer` of ``agent``).
        tree: branch each group's episodes from env snapshots at chosen turns (:mod:`trainers.core.tree`); needs
            a list of envs, and waves hold whole groups.
    """

    def __init__(
        self,
        policy: Sampler,
        envs: Sequence[gym.Env] | gym.vector.VectorEnv,
        agent: AgentSpec,
        *,
        generator: torch.Generator | None = None,
        autocast: Callable[[], Any] | None = None,
        renderer: PromptRenderer | None = None,
        tree: TreeSpec | None = None,
    ) -> None:
        self.policy = policy
        self.slots = _Slots(envs)
        if tree is not None and self.slots.vector:
            raise ValueError("tree rollouts restore env snapshots per env: pass a list of envs, not a vector env")
        self.tree = tree
        self.agent = agent
        self.generator = generator
        self.autocast = autocast
        self.prompt_ids = renderer or PromptRenderer(policy, agent)
        self.carry = self.prompt_ids.format.carry
        self.next_traj_id = 0

    # ---------------------------------------------------------------------------------- rollouts
    def collect(
        self,
        tasks: Sequence[TaskSpec],
        *,
        temperature: float | None = None,
        progress: Callable[[Callable[[], str]], None] | None = None,
    ) -> tuple[list[Trajectory], RolloutStats]:
        """Play every task once; returns trajectories in task order and timing stats. ``progress`` (e.g. a
        :class:`~trainers.core.progress.Heartbeat`) is offered a status message after every turn."""
        trajs: list[Trajectory] = []
        stats = RolloutStats()
        waves = list(_chunks(list(tasks), self.slots.n) if self.tree is None else group_waves(list(tasks), self.slots.n))
        for k, wave in enumerate(waves):
            def status(turn: int, eps: list[_Episode], k: int = k) -> str:
                done = len(trajs) + sum(not e.active and not e.waiting for e in eps)
                won = sum(t.won for t in trajs) + sum(e.traj.won for e in eps)
                return (f"wave {k + 1}/{len(waves)}, turn {turn + 1}/{self.agent.max_turns}: {done}/{len(tasks)} "
                        f"episodes done, {won} won, {stats.env_steps + sum(len(e.traj.turns) for e in eps)} env steps")

            t, s = self._wave(wave, self.agent.temperature if temperature is None else temperature,
                              None if progress is None else lambda turn, eps: progress(lambda: status(turn, eps)))
            trajs.extend(t)
            stats.add(s)
        return trajs, stats

    def _wave(
        self, tasks: list[TaskSpec], temperature: float, on_turn: Callable[[int, list[_Episode]], None] | None = None
    ) -> tuple[list[Trajectory], RolloutStats]:
        stats = RolloutStats()
        start = time.perf_counter()
        t0 = time.perf_counter()
        resets = self.slots.reset(tasks)
        stats.env_s += time.perf_counter() - t0
        eps = []
        for task, (obs, info) in zip(tasks, resets, strict=True):
            traj = Trajectory(self.next_traj_id, task.group_id, task, task_type=_text(info.get("task_type", "")),
                              task_id=_text(info.get("task_id", "")))
            self.next_traj_id += 1
            eps.append(_Episode(traj, obs, info))
        if self.tree is not None:
            plant(self.tree, eps, tasks)
        for turn_idx in range(self.agent.max_turns):
            if self.tree is not None and turn_idx in self.tree.turns:
                t0 = time.perf_counter()
                branch(self.tree, eps, self.slots.envs, tasks)
                stats.env_s += time.perf_counter() - t0
            active = [i for i, e in enumerate(eps) if e.active]
            if not active:
                break
            prompts = [self.prompt_ids(eps[i].obs, eps[i].history, eps[i].carried) for i in active]
            t0 = time.perf_counter()
            gens = self._generate(prompts, temperature)
            stats.generate_s += time.perf_counter() - t0
            stats.generated_tokens += sum(len(g.response_ids) for g in gens)
            t0 = time.perf_counter()
            results = self.slots.step({i: g.text for i, g in zip(active, gens, strict=True)})
            stats.env_s += time.perf_counter() - t0
            stats.env_steps += len(active)
            for i, prompt, gen in zip(active, prompts, gens, strict=True):
                self._record(eps[i], turn_idx, prompt, gen, results[i])
            if on_turn is not None:
                on_turn(turn_idx, eps)
        for e in eps:
            if e.active:  # cut at max_turns
                e.traj.truncated = True
                e.traj.turns[-1].truncated = True
                e.active = False
            if not e.traj.terminated:
                e.traj.next_prompt_ids = self.prompt_ids(e.obs, e.history, e.carried)
        stats.total_s = time.perf_counter() - start
        return [e.traj for e in eps], stats

    def _generate(self, prompts: list[list[int]], temperature: float) -> list[Generation]:
        kwargs = dict(
            max_new_tokens=self.agent.max_new_tokens,
            temperature=temperature,
            top_p=self.agent.top_p,
            generator=self.generator,
            stop_strings=self.agent.stop_strings or None,
        )
        if self.autocast is None:
            return self.policy.generate(prompts, **kwargs)
        with self.autocast():
            return self.policy.generate(prompts, **kwargs)

    def _record(self, ep: _Episode, turn_idx: int, prompt: list[int], gen: Generation, result: tuple) -> None:
        obs, reward, term, trunc, info = result
        turn = Turn(
            prompt_ids=prompt,
            response_ids=list(gen.response_ids),
            response_mask=[1] * len(gen.response_ids),
            old_logprobs=list(gen.logprobs),
            reward=reward,
            done=term,
            truncated=trunc,
            turn_idx=turn_idx,
            traj_id=ep.traj.traj_id,
            group_id=ep.traj.group_id,
            response_text=gen.text,
            observation=_text(ep.obs.get("text", "")),
            command=_text(info.get("command", "")),
            state_hash=_text(ep.info.get("state_hash", "")),
            progress=float(info.get("progress", 0.0)),
            plan_score=float(info.get("plan_score", 0.0)),
            plan_step=int(info.get("plan_step", 0)),
            action_valid=bool(info.get("action_valid", True)),
            format_ok=bool(info.get("format_ok", True)),
            won=bool(info.get("won", False)),
            finished=gen.finished,
            entropy=gen.mean_entropy,
        )
        mask, extras = self.turn_extras(ep.obs, gen, result)
        if mask is not None:
            turn.response_mask = mask
        turn.extras.update(extras)
        ep.traj.turns.append(turn)
        shown = turn.command or gen.text.strip()[:200]
        ep.history.append((turn.observation, shown))
        if self.carry is not None:
            written = getattr(parse_action(gen.text), self.carry, None)
            if written:
                ep.carried = written
        ep.obs, ep.info = obs, info
        ep.traj.won = ep.traj.won or turn.won
        if term or trunc:
            ep.traj.terminated, ep.traj.truncated, ep.active = term, trunc and not term, False

    def turn_extras(
        self, obs: Mapping[str, Any], gen: Generation, result: tuple
    ) -> tuple[list[int] | None, dict[str, Any]]:
        """What a method records on a turn besides the generic fields: a ``response_mask`` replacing the
        default (every sampled token trainable; None keeps it) and ``Turn.extras`` entries. ``obs`` is the
        observation the response answered, ``result`` the env step's ``(obs, reward, terminated, truncated,
        info)``. The generic collector records nothing."""
        return None, {}


def _chunks(xs: list[TaskSpec], n: int) -> Iterator[list[TaskSpec]]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


# ------------------------------------------------------------------------------------------ batch views
def turn_batch(
    trajs: Sequence[Trajectory],
    rewards: torch.Tensor | None = None,
    *,
    values: torch.Tensor | None = None,
    last_values: torch.Tensor | None = None,
    with_state_keys: bool = True,
    extras: Mapping[str, torch.Tensor] | None = None,
) -> TurnBatch:
    """The :class:`TurnBatch` of ``trajs`` (turns flattened trajectory-major, as :func:`flat_turns`).

    ``rewards`` [N] overrides the env rewards (a trainer's ``score``); ``values``/``last_values`` and the
    per-turn ``extras`` a method's estimator reads are passed through. Trajectory ids are renumbered 0..M-1 in
    order; ``state_keys`` are the turns' ``state_hash``.
    """
    turns = flat_turns(trajs)
    r = torch.tensor([t.reward for t in turns], dtype=torch.float32) if rewards is None else rewards.float()
    lengths = [len(t) for t in trajs]
    return TurnBatch(
        rewards=r,
        dones=torch.tensor([float(t.done) for t in turns], dtype=torch.float32),
        traj_ids=torch.tensor([i for i, n in enumerate(lengths) for _ in range(n)], dtype=torch.long),
        group_ids=torch.tensor([t.group_id for t in turns], dtype=torch.long),
        turn_idx=torch.tensor([t.turn_idx for t in turns], dtype=torch.long),
        values=values,
        last_values=last_values,
        state_keys=tuple(t.state_hash for t in turns) if with_state_keys else None,
        extras=dict(extras or {}),
    )


def flat_turns(trajs: Sequence[Trajectory]) -> list[Turn]:
    """All turns, trajectory-major then turn-minor (the order of every per-turn tensor)."""
    return [t for traj in trajs for t in traj.turns]
