"""The real ScienceWorld engine (Java, through the ``scienceworld`` package) as a
:class:`~pilot_envs.core.backend.Backend`."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pilot_envs.core import spaces
from pilot_envs.core.backend import Backend, Outcome, TaskMeta, cache_dir, int_option, write_cache_file
from pilot_envs.core.task import Subgoal, oracle_plan_text
from pilot_envs.scienceworld import tasks
from pilot_envs.scienceworld.engine import Engine, EngineDied, require_engine

__all__ = ["ScienceWorldBackend", "OPTION_KEYS", "condense_gold_path", "parse_goal_progress"]

OPTION_KEYS = ("split", "task_index", "task", "variation")
NO_MATCH = "No known action matches that input."
UNKNOWN_ACTION = "Unknown action."
#: commands that only read the world (no tick): they never take the agent off the gold path
FREE_COMMANDS = frozenset({"look around", "inventory", "task", "help", "objects"})
MAX_PLAN_STEPS = 64


def parse_goal_progress(text: str) -> tuple[tuple[str, ...], int]:
    """ScienceWorld's goal-progress report -> (sequential subgoal texts, how many of them are done, in order)."""
    goals, done, in_sequence, prefix = [], 0, False, True
    for line in text.splitlines():
        if line.startswith("Sequential Subgoals"):
            in_sequence = True
            continue
        if line.startswith("Unordered"):
            break
        fields = line.split("\t")
        if in_sequence and len(fields) >= 4 and fields[0].strip().isdigit():
            goals.append(fields[3].strip() or fields[2].strip())
            prefix = prefix and fields[1].strip() == "true"
            done += prefix
    return tuple(goals), done


def condense_gold_path(gold: Sequence[str], max_steps: int = MAX_PLAN_STEPS) -> tuple[str, ...]:
    """ScienceWorld's gold action path as plan steps: observation-only commands dropped, ``open door to X`` joined
    with ``go to X``, and a block repeated back to back written once with its count (``examine .., then use
    thermometer .. (repeat 9 times)``). At most ``max_steps`` steps (neighbours are joined when longer)."""
    cmds = [c for c in gold if c not in FREE_COMMANDS]
    steps: list[str] = []
    i = 0
    while i < len(cmds):
        best_len, best_count = 1, 1
        for size in range(1, 5):
            block, count = cmds[i : i + size], 1
            while cmds[i + count * size : i + (count + 1) * size] == block:
                count += 1
            if count > 1 and size * count > best_len * best_count:
                best_len, best_count = size, count
        block = cmds[i : i + best_len]
        if best_count == 1 and cmds[i].startswith("open door to ") and cmds[i + 1 : i + 2] == [f"go to {cmds[i][13:]}"]:
            block = cmds[i : i + 2]
            best_len = 2
        text = ", then ".join(block)
        steps.append(f"{text} (repeat {best_count} times)" if best_count > 1 else text)
        i += best_len * best_count
    while len(steps) > max_steps:
        steps = [", then ".join(steps[j : j + 2]) for j in range(0, len(steps), 2)]
    return tuple(steps)


class ScienceWorldBackend(Backend):
    """ScienceWorld tasks by (task, variation), over one lazily started JVM."""

    max_subgoals = 16
    domain = "ScienceWorld, a text-based simulation of elementary science experiments"
    noop_action = "look around"

    def __init__(
        self,
        *,
        task: str | Sequence[str] | None = None,
        simplifications: str | Sequence[str] = "",
        max_commands: int = 8192,
        gold_path: bool = True,
        jvm_options: Sequence[str] = (),
        deterministic: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ):
        require_engine()
        if isinstance(max_commands, bool) or not isinstance(max_commands, int) or max_commands < 1:
            raise ValueError(f"max_commands must be a positive int, got {max_commands!r}")
        if isinstance(jvm_options, str) or not all(isinstance(o, str) for o in jvm_options):
            raise TypeError("jvm_options is a sequence of strings, e.g. ('-Xmx2g',)")
        self.tasks = tasks.resolve_tasks(task)
        self.simplifications = tasks.resolve_simplifications(simplifications, self.tasks)
        self.max_commands = max_commands
        self.gold_path = bool(gold_path)
        self.jvm_options = tuple(jvm_options)
        self.deterministic = bool(deterministic)
        self.cache_root = None if cache_dir is None else os.fspath(cache_dir)
        self._engine: Engine | None = None
        self._gold_memo: dict[tuple[str, int], tuple[str, ...]] = {}
        self._task: str | None = None
        self._variation = 0
        self._history: list[str] = []  # commands sent since the episode's load (replayed after unpickling)
        self._engine_in_episode = False  # does the engine's world hold this episode?
        self._lost_engine: str | None = None  # why the episode's JVM is gone
        self._gold: tuple[str, ...] = ()
        self._loaded_with_gold = False
        self._gold_pos = 0
        self._on_gold = True
        self._stage = 0
        self._score = 0
        self._completed = False
        self._moves = 0
        self._admissible: tuple[str, ...] = ()
        self._hash = ""
        self._goal_report = ""

    # ------------------------------------------------------------------ engine lifecycle
    @property
    def engine_pid(self) -> int | None:
        """The pid of this env's JVM (None before the first reset and after close)."""
        return self._engine.pid if self._engine is not None and self._engine.usable() else None

    def _ensure_engine(self) -> Engine:
        if self._engine is None or not self._engine.usable():
            if self._engine is not None:
                self._engine.close()
            self._engine = Engine(self.jvm_options, self.cache_root, self.deterministic)
            self._engine_in_episode = False
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._engine_in_episode = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"] = None  # a JVM does not pickle: the copy starts its own and replays the episode
        state["_engine_in_episode"] = False
        return state

    # ------------------------------------------------------------------ task selection
    def splits(self) -> dict[str, int]:
        return {split: sum(len(tasks.variations(t, split)) for t in self.tasks) for split in tasks.SPLITS}

    def _choose(self, rng: np.random.Generator, options: dict[str, Any]) -> tuple[str, int, str]:
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid keys are {OPTION_KEYS}")
        pool = self.tasks
        if options.get("task") is not None:
            pool = tasks.resolve_tasks(options["task"])
            if len(pool) != 1 or pool[0] not in self.tasks:
                raise ValueError(f"options['task'] must be one of this env's tasks {self.tasks}, got {options['task']!r}")
        variation = int_option(options, "variation")
        index = int_option(options, "task_index")
        split = options.get("split")
        if split is not None and split not in tasks.SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {tasks.SPLITS}")
        if split is None and index is not None:
            raise ValueError("options['task_index'] needs options['split'] (train, dev or test)")
        if variation is not None:
            if len(pool) != 1 or split is not None or index is not None:
                raise ValueError("options['variation'] goes with options['task'] (or a one-task env) and nothing else")
            if not 0 <= variation < tasks.NUM_VARIATIONS[pool[0]]:
                raise ValueError(f"{pool[0]} has variations 0..{tasks.NUM_VARIATIONS[pool[0]] - 1}, not {variation}")
            return pool[0], variation, tasks.split_of(pool[0], variation)
        split = split or "train"
        if index is None:  # a task uniformly, then one of its variations in the split
            task = pool[int(rng.integers(len(pool)))] if len(pool) > 1 else pool[0]
            choices = tasks.variations(task, split)
            return task, choices[int(rng.integers(len(choices)))], split
        for task in pool:  # index into the split's variations of every task, in task order
            choices = tasks.variations(task, split)
            if 0 <= index < len(choices):
                return task, choices[index], split
            index -= len(choices)
        total = sum(len(tasks.variations(t, split)) for t in pool)
        raise ValueError(f"options['task_index'] must be in [0, {total}) for split {split!r}")

    # ------------------------------------------------------------------ episodes
    def load(self, rng: np.random.Generator, options: dict[str, Any]) -> TaskMeta:
        task, variation, split = self._choose(rng, options)
        self._task, self._variation, self._history, self._lost_engine = task, variation, [], None
        self._gold_pos, self._on_gold = 0, True
        try:
            try:
                text = self._load_world(self._ensure_engine(), task, variation)
            except EngineDied:  # it died between episodes: one fresh JVM, then give up loudly
                text = self._load_world(self._ensure_engine(), task, variation)
            engine = self._engine
            description = engine.call(engine.sw.get_task_description)
        except KeyboardInterrupt:  # the world is half loaded: a step before the next reset starts this task afresh
            self._engine_in_episode = False
            raise
        goals = tuple(Subgoal(g) for g in parse_goal_progress(self._goal_report)[0])
        plan = condense_gold_path(self._gold) if self._gold else oracle_plan_text(goals)
        return TaskMeta(
            initial_text=spaces.sanitize(text),
            task=spaces.sanitize(description, 1024),
            subgoals=goals,
            oracle_plan=plan,
            task_type=task,
            task_id=f"{task}/var{variation}",
            split=split,
        )

    def _load_world(self, engine: Engine, task: str, variation: int) -> str:
        """Load (task, variation) into the engine and return the first observation (like ``ScienceWorldEnv.reset``)."""
        self._gold = self._gold_for(engine, task, variation) if self.gold_path else ()
        if not (self.gold_path and self._loaded_with_gold):
            engine.call(engine.sw.load, task, variation, self.simplifications, False)
        text = engine.call(engine.server.step, "look around")
        self._engine_in_episode = True
        self._refresh(engine)
        return text

    def _gold_for(self, engine: Engine, task: str, variation: int) -> tuple[str, ...]:
        """The engine's gold path for (task, variation), from memory, the disk cache, or the engine."""
        self._loaded_with_gold = False
        key = (task, variation)
        if key not in self._gold_memo:
            path = self._gold_file(task, variation)
            try:
                self._gold_memo[key] = tuple(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                engine.call(engine.sw.load, task, variation, self.simplifications, True)
                self._loaded_with_gold = True
                gold = tuple(engine.call(engine.sw.get_gold_action_sequence))
                self._gold_memo[key] = tuple(c for c in gold if c not in FREE_COMMANDS)
                if path is not None:
                    write_cache_file(path, json.dumps(list(self._gold_memo[key])))
        return self._gold_memo[key]

    def _gold_file(self, task: str, variation: int) -> Path | None:
        """The cache file of a gold path (None when the cache directory cannot be created)."""
        from scienceworld import __version__

        try:
            det = "-deterministic" if self.deterministic else ""  # object names can differ between the two modes
            folder = cache_dir("scienceworld", f"gold-{__version__}{det}", root=self.cache_root)
        except OSError:
            return None
        return folder / f"{task}-{variation}-{self.simplifications.replace(',', '+') or 'none'}.json"

    def _refresh(self, engine: Engine) -> None:
        """Read what the env reports after a step (score, completion, valid actions, subgoal progress)."""
        server = engine.server
        self._score = round(100 * engine.call(server.getScore))
        self._completed = bool(engine.call(server.getCompleted))
        self._moves = int(engine.call(server.getNumMoves))
        valid = engine.strings(engine.call(server.getValidActionObjectCombinations))
        self._admissible = tuple(dict.fromkeys(sorted(valid)))
        look = engine.call(engine.sw.look)
        inventory = engine.call(engine.sw.inventory)
        goal = self._goal_report = engine.call(engine.sw.get_goal_progress)
        _, self._stage = parse_goal_progress(goal)
        h = hashlib.sha1()
        for part in (self._task or "", str(self._variation), str(self._moves), str(self._score), look, inventory, goal):
            h.update(part.encode())
            h.update(b"\0")
        h.update("\n".join(self._admissible).encode())  # includes a pending "which one did you mean?" question
        self._hash = h.hexdigest()

    def _replay(self, engine: Engine) -> None:
        """Rebuild this episode in an engine that does not hold it (a fresh one after unpickling, in a forked child
        or after an interrupted step; the same one when a step was interrupted between two engine calls)."""
        engine.call(engine.sw.load, self._task, self._variation, self.simplifications, False)
        engine.call(engine.server.step, "look around")
        for command in self._history:
            engine.call(engine.server.step, command)
        self._refresh(engine)
        self._engine_in_episode = True

    def execute(self, command: str) -> Outcome:
        if self._lost_engine is not None:
            raise EngineDied(self._lost_engine)
        try:
            if self._engine is not None:
                self._engine.check_alive()  # a JVM that died between steps loses the episode, as one dying in a step
            engine = self._ensure_engine()  # only starts one when this process never had one (unpickled, forked)
            if not self._engine_in_episode:
                self._replay(engine)
            moves = self._moves
            command = command.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot cross to Java
            text = engine.call(engine.server.step, command)
            self._refresh(engine)
        except EngineDied as exc:
            self._lost_engine = str(exc)
            raise
        except KeyboardInterrupt:  # the command may or may not have reached the JVM: rebuild the episode without it
            self._engine_in_episode = False
            raise
        self._history.append(command)
        valid = not text.startswith((NO_MATCH, UNKNOWN_ACTION)) or self._moves != moves
        if valid and self._on_gold and command not in FREE_COMMANDS:
            if self._gold_pos < len(self._gold) and command == self._gold[self._gold_pos]:
                self._gold_pos += 1
            else:
                self._on_gold = False
        won = self._completed and self._score >= 100
        lost = self._score < 0 or (self._completed and not won)
        return Outcome(text, valid=valid, won=won, lost=lost)

    # ------------------------------------------------------------------ what the env reports
    def admissible_commands(self) -> tuple[str, ...]:
        return self._admissible

    def stage(self) -> int:
        return self._stage

    def progress(self) -> float:
        return min(1.0, max(0, self._score) / 100)

    def expert_plan(self) -> tuple[str, ...]:
        return self._gold[self._gold_pos :] if self._on_gold else ()

    def state_hash(self) -> str:
        return self._hash
