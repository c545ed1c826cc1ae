"""The native household engine as a :class:`~pilot_envs.core.backend.Backend`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pilot_envs.alfworld import milestones, tasks
from pilot_envs.alfworld.expert import expert_plan
from pilot_envs.alfworld.scene import TASK_TYPES, Scene
from pilot_envs.alfworld.text import NOTHING
from pilot_envs.alfworld.world import World
from pilot_envs.core.backend import Backend, Outcome, TaskMeta
from pilot_envs.core.snapshot import SnapshotError
from pilot_envs.core.task import oracle_plan_text

__all__ = ["HouseholdBackend", "GRAMMARS", "OPTION_KEYS"]

GRAMMARS = ("alfworld", "legacy")
OPTION_KEYS = ("split", "task_index", "scene")


class HouseholdBackend(Backend):
    """Loads tasks from the fixed splits or the procedural generator and runs them in a :class:`World`."""

    max_commands = 512
    max_subgoals = 8
    domain = "a text-based embodied environment"
    exact_snapshots = True

    def __init__(
        self,
        *,
        task_types: Sequence[str] | None = None,
        max_receptacles: int | None = None,
        max_objects: int | None = None,
        grammar: str = "alfworld",
    ):
        if task_types is not None:
            task_types = tuple(task_types)
            unknown = [t for t in task_types if t not in TASK_TYPES]
            if unknown or not task_types:
                raise ValueError(f"unknown task types {unknown}; choose from {TASK_TYPES}")
        if grammar not in GRAMMARS:
            raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")
        for name, value in (("max_receptacles", max_receptacles), ("max_objects", max_objects)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self.task_types = task_types
        self.max_receptacles = max_receptacles
        self.max_objects = max_objects
        self.legacy = grammar == "legacy"
        self.world: World | None = None
        self.scene: Scene | None = None

    # ------------------------------------------------------------------ task selection
    def _scene(self, rng: np.random.Generator, options: dict[str, Any]) -> tuple[Scene, str]:
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid keys are {OPTION_KEYS}")
        if options.get("scene") is not None:
            scene = options["scene"]
            if not isinstance(scene, Scene):
                raise TypeError("options['scene'] must be a pilot_envs.alfworld.scene.Scene")
            return scene, "custom"
        caps = dict(task_types=self.task_types, max_receptacles=self.max_receptacles, max_objects=self.max_objects)
        split = options.get("split")
        if split is None:
            if options.get("task_index") is not None:
                raise ValueError("options['task_index'] needs options['split'] (train, valid_seen or valid_unseen)")
            return tasks.sample_scene(rng, **caps), "procedural"
        if split not in tasks.SPLIT_SIZES:
            raise ValueError(f"unknown split {split!r}; choose from {tuple(tasks.SPLIT_SIZES)}")
        index = options.get("task_index")
        if index is None:
            index = int(rng.integers(tasks.split_size(split, self.task_types)))
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"options['task_index'] must be an int, got {type(index).__name__}")
        return tasks.split_scene(split, int(index), **caps), split

    def load(self, rng: np.random.Generator, options: dict[str, Any]) -> TaskMeta:
        scene, split = self._scene(rng, options)
        self.scene = scene
        self.world = World(scene, legacy=self.legacy)
        goals = milestones.subgoals(scene.task)
        self._num_goals = len(goals)
        return TaskMeta(
            initial_text=self.world.intro(),
            task=scene.task.goal,
            subgoals=goals,
            oracle_plan=oracle_plan_text(goals),
            task_type=scene.task.task_type,
            task_id=scene.task_id,
            split=split,
        )

    # ------------------------------------------------------------------ dynamics
    def execute(self, command: str) -> Outcome:
        text = self.world.execute(command)
        if text is None:
            return Outcome(NOTHING, valid=False)
        return Outcome(text, valid=True, won=self.stage() == self._num_goals)

    def admissible_commands(self) -> tuple[str, ...]:
        return self.world.admissible_commands()

    def snapshot(self) -> dict[str, Any]:
        return {"world": self.world, "num_goals": self._num_goals}

    def restore(self, state: dict[str, Any]) -> None:
        world = state["world"]
        if not isinstance(world, World) or world.legacy != self.legacy:
            raise SnapshotError("damaged snapshot: the backend state is not a household world of this grammar")
        self.world, self.scene, self._num_goals = world, world.scene, int(state["num_goals"])

    def stage(self) -> int:
        return milestones.stage(self.world, self.scene.task)

    def expert_plan(self) -> tuple[str, ...]:
        return expert_plan(self.world, self.scene.task)

    def state_hash(self) -> str:
        return self.world.state_hash()

    def splits(self) -> dict[str, int]:
        return {split: tasks.split_size(split, self.task_types) for split in tasks.SPLIT_SIZES}
