"""Differential check of the native engine against the real ALFWorld engine.

A scene is exported as a real ALFWorld game, then both engines play the same command sequence: the
oracle expert's plan with random admissible commands mixed in. After every command the feedback text,
the set of admissible commands and ``won`` must be identical. Run it at scale with::

    python -m pilot_envs.alfworld.differential --tasks 300
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pilot_envs.alfworld import milestones
from pilot_envs.alfworld.expert import expert_plan
from pilot_envs.alfworld.export import export_game
from pilot_envs.alfworld.scene import TASK_TYPES, Scene
from pilot_envs.alfworld.tasks import split_scene, split_size
from pilot_envs.alfworld.text import NOTHING
from pilot_envs.alfworld.world import World

__all__ = ["Mismatch", "DiffResult", "compare_scene", "differential_scenes", "main"]


@dataclass(frozen=True)
class Mismatch:
    step: int
    command: str
    what: str  # "text" | "admissible" | "won"
    native: object
    real: object


@dataclass
class DiffResult:
    task_id: str
    task_type: str
    commands: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    won: bool = False


def _step_native(world: World, scene: Scene, command: str) -> tuple[str, list[str], bool]:
    text = world.execute(command)
    return (text if text is not None else NOTHING), list(world.admissible_commands()), milestones.won(world, scene.task)


def compare_scene(scene: Scene, *, seed: int, max_steps: int = 30, noise: float = 0.3, workdir: Path) -> DiffResult:
    """Play one scene in both engines; returns every mismatch found (empty means identical)."""
    from pilot_envs.alfworld.real_engine import RealALFWorld

    rng = np.random.default_rng(seed)
    world = World(scene)
    path = export_game(scene, workdir / f"{scene.task_id.replace('/', '_')}.tw-pddl")
    result = DiffResult(scene.task_id, scene.task.task_type)

    def check(step: int, command: str, native: tuple, real: tuple) -> None:
        for what, a, b in (("text", native[0], real[0]), ("admissible", sorted(native[1]), sorted(real[1])),
                           ("won", native[2], real[2])):
            if a != b:
                result.mismatches.append(Mismatch(step, command, what, a, b))

    with RealALFWorld(path) as real:
        check(0, "<reset>", (world.intro(), list(world.admissible_commands()), False), real.reset())
        for step in range(1, max_steps + 1):
            plan = expert_plan(world, scene.task)
            cmds = world.admissible_commands()
            if plan and rng.random() >= noise:
                command = plan[0]
            else:
                command = str(cmds[int(rng.integers(len(cmds)))])
            if rng.random() < 0.05:  # now and then something that must do nothing in both engines
                command = rng.choice(["go to the moon", "take everything", "put mug 1 in/on nothing", "open"])
            result.commands.append(command)
            native = _step_native(world, scene, command)
            check(step, command, native, real.step(command))
            if native[2]:
                result.won = True
                break
    return result


def differential_scenes(n: int, *, seed: int = 0, small_fraction: float = 0.8) -> list[Scene]:
    """``n`` scenes covering every task type and both room sets (seen and unseen layouts).

    Most are small scenes (the real engine's reset time grows quickly with the number of receptacles);
    the rest are full-size rooms.
    """
    rng = np.random.default_rng(seed)
    scenes = []
    for k in range(n):
        task_type = TASK_TYPES[k % len(TASK_TYPES)]
        split = "valid_unseen" if (k // len(TASK_TYPES)) % 2 else "train"
        index = int(rng.integers(split_size(split, [task_type])))
        small = rng.random() < small_fraction
        caps = {"max_receptacles": 8, "max_objects": 10} if small else {}
        scenes.append(split_scene(split, index, task_types=[task_type], **caps))
    return scenes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=30)
    args = p.parse_args(argv)
    bad = 0
    steps = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, scene in enumerate(differential_scenes(args.tasks, seed=args.seed)):
            res = compare_scene(scene, seed=args.seed + k, max_steps=args.max_steps, workdir=Path(tmp))
            steps += len(res.commands)
            if res.mismatches:
                bad += 1
                m = res.mismatches[0]
                print(f"MISMATCH {res.task_id} ({res.task_type}) step {m.step} {m.command!r} [{m.what}]\n"
                      f"  native: {m.native!r}\n  real:   {m.real!r}")
    print(f"{args.tasks - bad}/{args.tasks} tasks identical over {steps} commands")
    return int(bad > 0)


if __name__ == "__main__":
    raise SystemExit(main())
