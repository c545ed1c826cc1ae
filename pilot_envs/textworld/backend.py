"""The real TextWorld engine (Inform 7 games run by Jericho, tracked by TextWorld's game logic) as a
:class:`~pilot_envs.core.backend.Backend`."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.error import DependencyNotInstalled

from pilot_envs.core import spaces
from pilot_envs.core.backend import Backend, Outcome, TaskMeta, int_option
from pilot_envs.core.task import Subgoal, oracle_plan_text
from pilot_envs.core.text_env import NOTHING_HAPPENS
from pilot_envs.textworld.games import DEFAULT_SPLIT_SIZES, GameSpec, ensure_game, find_game, make_settings

__all__ = ["TextWorldBackend", "OPTION_KEYS", "milestones", "META_COMMANDS"]

OPTION_KEYS = ("split", "task_index", "game_seed")
#: Inform 7 commands that restart, quit, save or rewind the story behind the state tracker's back (after
#: ``restart`` TextWorld stops seeing actions at all), or read and write files in the working directory
#: (transcripts, command recordings): refused with ``Nothing happens.`` wherever they stand in the input, since
#: Inform runs several commands from one line (``look. transcript``, ``look then script``)
META_COMMANDS = frozenset({
    "restart", "quit", "q", "save", "restore", "undo", "oops", "script", "unscript", "transcript", "noscript",
    "recording", "replay", "verify", "tw-trace-actions", "tw-extra-infos", "tw-print",
})
_WORDS = re.compile(r"[^\s.,;:!?]+")
INPUT_BYTES = 198  # the Z-machine's input buffer
#: TextWorld verbs -> the plan-matching verb of :data:`pilot_envs.core.task.SYNONYMS`
_VERBS = {"insert": "put", "drop": "put"}
_PREPOSITIONS = frozenset({"from", "with", "on", "in", "into", "to"})


def milestones(actions: Sequence[Any], commands: Sequence[str], names: Mapping[str, str], max_subgoals: int
               ) -> tuple[tuple[Subgoal, ...], tuple[int, ...]]:
    """A quest's winning policy as milestones: each run of ``go`` moves becomes ``go to the <room>``, every other
    command is a milestone of its own. Returns the subgoals and, for each, how many policy steps it ends at."""
    groups: list[tuple[Subgoal, int]] = []
    for i, (action, command) in enumerate(zip(actions, commands, strict=True)):
        if action.name.startswith("go/"):
            room = next(
                (names.get(p.arguments[1].name, "") for p in action.postconditions
                 if p.name == "at" and p.arguments[0].name == "P"), ""
            ) or command[3:]
            goal = Subgoal(f"go to the {room}", verb="go", args=(room,))
            if i and actions[i - 1].name.startswith("go/"):  # the run goes on: its milestone is the new room
                groups[-1] = (goal, i + 1)
                continue
        else:
            words = command.split()
            obj = []
            for w in words[1:]:
                if w in _PREPOSITIONS:
                    break
                obj.append(w)
            goal = Subgoal(command, verb=_VERBS.get(words[0], words[0]), args=(" ".join(obj),) if obj else ())
        groups.append((goal, i + 1))
    while len(groups) > max_subgoals:  # very long quests: join neighbours
        groups = [
            (Subgoal("; ".join(g.text for g, _ in pair)), pair[-1][1]) for pair in
            (groups[j : j + 2] for j in range(0, len(groups), 2))
        ]
    return tuple(g for g, _ in groups), tuple(end for _, end in groups)


def _or_list(names: Sequence[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    names = tuple(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class TextWorldBackend(Backend):
    """Games of one TextWorld generator, by split index (or by seed), over one Jericho interpreter."""

    max_commands = 1024
    max_subgoals = 32
    domain = "a text adventure game (TextWorld)"

    def __init__(
        self,
        *,
        challenge: str = "treasure_hunter",
        level: int | None = None,
        settings: Mapping[str, Any] | None = None,
        split_sizes: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        if importlib.util.find_spec("textworld") is None:
            raise DependencyNotInstalled("PilotTextWorld needs the textworld package: pip install 'pilot-envs[textworld]'")
        self.challenge = challenge
        self.settings = make_settings(challenge, level, settings)
        sizes = {**DEFAULT_SPLIT_SIZES, **dict(split_sizes or {})}
        if set(sizes) != set(DEFAULT_SPLIT_SIZES) or not all(isinstance(n, int) and n >= 0 for n in sizes.values()):
            raise ValueError(f"split_sizes maps {tuple(DEFAULT_SPLIT_SIZES)} to non-negative ints, got {split_sizes!r}")
        self.split_sizes = sizes
        self.cache_root = None if cache_dir is None else os.fspath(cache_dir)
        self._env: Any = None  # the textworld environment (not picklable: rebuilt on demand)
        self._env_path: Path | None = None
        self._env_in_episode = False
        self._spec: GameSpec | None = None
        self._key = ""
        self._jericho_seed = 1
        self._history: list[str] = []
        self._ends: tuple[int, ...] = ()
        self._policy_length = 1
        self._policy: tuple[str, ...] = ()
        self._remaining: int | None = 0
        self._admissible: tuple[str, ...] = ()
        self._moves = 0
        self._hash = ""
        self._fact_names: dict[Any, str] = {}

    # ------------------------------------------------------------------ task selection
    def splits(self) -> dict[str, int]:
        return dict(self.split_sizes)

    def _choose(self, rng: np.random.Generator, options: dict[str, Any]) -> tuple[GameSpec, Path]:
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid keys are {OPTION_KEYS}")
        settings = tuple(sorted(self.settings.items()))
        if options.get("game_seed") is not None:
            if options.get("split") is not None or options.get("task_index") is not None:
                raise ValueError("options['game_seed'] picks a game by itself: drop 'split' and 'task_index'")
            seed = int_option(options, "game_seed")
            if not 1 <= seed < 2**31 - 1:
                raise ValueError(f"options['game_seed'] must be in [1, 2**31 - 1), got {seed}")
            spec = GameSpec(self.challenge, settings, seed, "custom")
            return spec, ensure_game(spec, self.cache_root)
        index = int_option(options, "task_index")
        if options.get("split") is None and index is not None:
            raise ValueError(f"options['task_index'] needs options['split'] ({_or_list(self.split_sizes)})")
        split = options.get("split") or "train"
        if split not in self.split_sizes:
            raise ValueError(f"unknown split {split!r}; choose from {tuple(self.split_sizes)}")
        size = self.split_sizes[split]
        if index is None:
            if size == 0:
                raise ValueError(f"split {split!r} is empty (split_sizes)")
            index = int(rng.integers(size))
        if not 0 <= index < size:
            raise ValueError(f"options['task_index'] must be in [0, {size}) for split {split!r}")
        return find_game(self.challenge, self.settings, split, index, self.cache_root)

    # ------------------------------------------------------------------ episodes
    def _start(self, path: Path) -> Any:
        import textworld

        if self._env is not None and self._env_path == path:
            return self._env
        if self._env is None:
            infos = textworld.EnvInfos(admissible_commands=True, policy_commands=True, won=True, lost=True,
                                       moves=True, objective=True)
            self._env = textworld.start(str(path), infos)
        else:
            self._env.load(str(path))
        self._env_path = path
        return self._env

    def load(self, rng: np.random.Generator, options: dict[str, Any]) -> TaskMeta:
        spec, path = self._choose(rng, options)
        env = self._start(path)
        self._spec, self._key, self._history = spec, spec.key, []
        self._jericho_seed = int(rng.integers(1, 2**31 - 1))
        env.seed(self._jericho_seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = env.reset()
        self._env_in_episode = True
        actions, commands = state["_winning_policy"] or [], state["policy_commands"] or []
        names = {k: v.name for k, v in state["game"].infos.items() if v.name}
        goals, self._ends = milestones(actions, commands, names, self.max_subgoals)
        self._policy_length = max(1, len(actions))
        self._read(state)
        return TaskMeta(
            initial_text=spaces.sanitize(state["feedback"]),
            task=spaces.sanitize(state["objective"] or "", 1024),
            subgoals=goals,
            oracle_plan=oracle_plan_text(goals),
            task_type=self.challenge,
            task_id=str(state.get("extra.uuid") or f"{self.challenge}-{self._key}"),
            split=spec.split,
        )

    def _read(self, state: Mapping[str, Any]) -> None:
        policy = state["_winning_policy"]  # None once the quest is won or can no longer be won
        self._remaining = 0 if state["won"] else None if policy is None else len(policy)
        self._policy = tuple(state["policy_commands"] or ())
        self._admissible = tuple(state["admissible_commands"] or ())
        self._moves = int(state["moves"] or 0)
        names = self._fact_names  # str() of a TextWorld proposition is slow; facts change little from step to step
        if len(names) > 50_000:
            names.clear()
        facts = sorted(names.get(f) or names.setdefault(f, str(f)) for f in state["_facts"])
        self._hash = hashlib.sha1("\n".join([self._key, *facts]).encode()).hexdigest()

    def _replay(self) -> Any:
        """Rebuild the episode in a fresh interpreter (after unpickling): same game, seed and commands."""
        env = self._start(ensure_game(self._spec, self.cache_root))
        env.seed(self._jericho_seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env.reset()
            for command in self._history:
                env.step(command)
        self._env_in_episode = True
        return env

    def execute(self, command: str) -> Outcome:
        if any(word in META_COMMANDS for word in _WORDS.findall(command)):
            return Outcome(NOTHING_HAPPENS, valid=False)
        if not (command.isascii() and command.isprintable()):
            # the Z-machine reads printable ASCII only; some UTF-8 byte sequences make Jericho's frotz loop forever
            # (found by the registry fuzz test), and no TextWorld word has another character
            return Outcome(NOTHING_HAPPENS, valid=False)
        env = self._env if self._env_in_episode else self._replay()
        command = command[:INPUT_BYTES]  # the Z-machine reads at most 198 bytes (ASCII: characters)
        moves = self._moves
        with warnings.catch_warnings():  # Jericho warns on every step that it cannot list actions for these games
            warnings.simplefilter("ignore")
            state, _, _ = env.step(command)
        self._history.append(command)
        self._read(state)
        return Outcome(state["feedback"], valid=self._moves > moves, won=bool(state["won"]), lost=bool(state["lost"]))

    # ------------------------------------------------------------------ what the env reports
    def admissible_commands(self) -> tuple[str, ...]:
        return self._admissible

    def _done_steps(self) -> int:
        if self._remaining is None:  # the quest can no longer be completed
            return 0
        return min(self._policy_length, max(0, self._policy_length - self._remaining))

    def stage(self) -> int:
        done = self._done_steps()
        return sum(end <= done for end in self._ends)

    def progress(self) -> float:
        return self._done_steps() / self._policy_length

    def expert_plan(self) -> tuple[str, ...]:
        return self._policy

    def state_hash(self) -> str:
        return self._hash

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env, self._env_path, self._env_in_episode = None, None, False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_env=None, _env_path=None, _env_in_episode=False, _fact_names={})  # replayed when stepped
        return state

