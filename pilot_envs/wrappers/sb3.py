"""Wrappers that make the text envs usable by classic RL libraries (Stable-Baselines3, sb3-contrib).

* :class:`DiscreteCommands` - ``Discrete(K)`` actions over the current admissible commands, with
  :meth:`~DiscreteCommands.action_masks` for ``sb3_contrib.MaskablePPO``.
* :class:`FeaturizeObservation` - the text observation as a flat ``Dict`` of ``float32`` Boxes (hashed
  bags of words, progress, subgoal flags, one feature row per command slot).
* :func:`make_sb3_env` - ``gym.make`` + both wrappers.

Neither wrapper needs torch or Stable-Baselines3; only NumPy and Gymnasium.

Example::

    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from pilot_envs.wrappers import make_sb3_env

    env = make_sb3_env("PilotALFWorldSmall-v0", max_commands=32, reward_mode="progress")
    model = MaskablePPO("MultiInputPolicy", env).learn(10_000)
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pilot_envs.core.spaces import TextList
from pilot_envs.wrappers.features import RELATION_NAMES, bag_of_words, command_features

__all__ = ["NO_OP", "DiscreteCommands", "FeaturizeObservation", "make_sb3_env"]

NO_OP = ""
"""What :class:`DiscreteCommands` sends for an out-of-range or masked index: an empty action, which every
env of this package answers ``Nothing happens.`` with ``info["action_valid"] = False`` and an unchanged
state (the step still counts towards the time limit, and ``invalid_action_penalty`` applies)."""


def _chain(env: gym.Env) -> list[gym.Env]:
    out = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


class DiscreteCommands(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``Discrete(max_commands)`` actions: index ``i`` executes the ``i``-th admissible command.

    **Slots.** The slots are the env's ``admissible_commands`` in the env's own (stable, sorted) order,
    padded to ``max_commands``. When there are more commands than slots, commands whose text starts with
    one of ``low_priority`` (``examine`` by default: it never changes the world) are dropped first, then
    the last ones in order; the kept ones stay in order, and ``info["commands_dropped"]`` says how many
    were dropped. The observation's ``admissible_commands`` is replaced by the slot list, so slot ``i`` is
    always ``obs["admissible_commands"][i]``.

    **Masks.** :meth:`action_masks` (also ``info["action_mask"]``) is ``True`` exactly for the filled
    slots. When the env offers no command at all, slot 0 alone is unmasked (it plays the no-op below),
    so a masked policy always has a legal action.

    **Bad indices never raise.** An index that is out of range (negative or ``>= max_commands``) or
    names an empty slot is sent to the env as :data:`NO_OP` (the empty string): the env answers
    ``Nothing happens.``, ``info["action_valid"]`` is False, the state does not change and the step counts.
    ``info["slot_valid"]`` tells whether the index named a filled slot and ``info["action_index"]`` echoes
    it. Only a value that is not an integer (e.g. a string or a float) raises ``TypeError``.
    """

    def __init__(self, env: gym.Env, max_commands: int = 64, *, low_priority: Sequence[str] = ("examine ",)):
        low_priority = (low_priority,) if isinstance(low_priority, str) else tuple(low_priority)
        gym.utils.RecordConstructorArgs.__init__(self, max_commands=max_commands, low_priority=low_priority)
        gym.Wrapper.__init__(self, env)
        max_commands = operator.index(max_commands)
        if max_commands < 1:
            raise ValueError(f"max_commands must be >= 1, got {max_commands}")
        obs_space = env.observation_space
        if not isinstance(obs_space, spaces.Dict) or "admissible_commands" not in obs_space.spaces:
            raise TypeError("DiscreteCommands needs an env whose observation is a Dict with 'admissible_commands'")
        self.max_commands = max_commands
        self.low_priority = low_priority
        self.action_space = spaces.Discrete(max_commands)
        self.observation_space = spaces.Dict({**obs_space.spaces, "admissible_commands": TextList(max_commands)})
        self._slots: tuple[str, ...] = ()
        self._dropped = 0

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observe(obs, info)

    def step(self, action: Any) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        index = self._index(action)
        filled = 0 <= index < len(self._slots)
        obs, reward, terminated, truncated, info = self.env.step(self._slots[index] if filled else NO_OP)
        obs, info = self._observe(obs, info)
        info["action_index"] = index
        info["slot_valid"] = filled
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """``bool`` array of shape ``(max_commands,)``: which indices name a command now."""
        mask = np.zeros(self.max_commands, dtype=bool)
        mask[: len(self._slots)] = True
        if not self._slots:
            mask[0] = True
        return mask

    @property
    def commands(self) -> tuple[str, ...]:
        """The command in each filled slot, in slot order."""
        return self._slots

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _index(action: Any) -> int:
        if isinstance(action, np.ndarray) and action.size == 1 and action.dtype.kind in "iu":
            return int(action.reshape(()))
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise TypeError(
                f"DiscreteCommands takes an integer slot index, got {type(action).__name__} {action!r}; "
                "out-of-range integers are safe (they play 'Nothing happens.')"
            )
        return int(action)

    def _fit(self, commands: Sequence[str]) -> tuple[str, ...]:
        commands = tuple(str(c) for c in commands)
        extra = len(commands) - self.max_commands
        if extra <= 0:
            return commands
        drop: set[int] = set()
        for i in reversed(range(len(commands))):  # low-priority ones first, from the end
            if len(drop) == extra:
                break
            if commands[i].startswith(self.low_priority):
                drop.add(i)
        for i in reversed(range(len(commands))):  # then the last ones
            if len(drop) == extra:
                break
            drop.add(i)
        return tuple(c for i, c in enumerate(commands) if i not in drop)

    def _observe(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        available = obs["admissible_commands"]
        self._slots = self._fit(available)
        self._dropped = len(available) - len(self._slots)
        obs = {**obs, "admissible_commands": self._slots}
        info = {**info, "action_mask": self.action_masks(), "commands_dropped": self._dropped}
        return obs, info


class FeaturizeObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turns the text observation into a flat ``Dict`` of ``float32`` Boxes (all values in [0, 1]).

    Must wrap a :class:`DiscreteCommands` (directly or through other wrappers), whose slots it describes.

    | key | shape | meaning |
    |---|---|---|
    | ``text`` | (text_dim,) | hashed bag of words and word pairs of the latest feedback |
    | ``task`` | (task_dim,) | hashed bag of words of the goal sentence |
    | ``plan`` | (2 * plan_dim,) | bag of the current plan step (``info["plan_step"]``), then of the whole plan |
    | ``progress`` | (1,) | fraction of subgoals satisfied |
    | ``subgoals_done`` | (num_subgoals,) | subgoal flags, in order |
    | ``elapsed`` | (1,) | steps taken / ``max_episode_steps`` of the env spec (0 when it has none) |
    | ``action_mask`` | (K,) | 1 for a filled command slot |
    | ``commands`` | (K, command_dim + 6) | one row per slot: see :func:`pilot_envs.wrappers.features.command_features` |

    ``commands`` rows carry a bag of words of the slot's command plus how it relates to the situation
    (shares of its words in the goal, the feedback and the current plan step; how often it was executed
    this episode; whether it was the previous command), so a policy can tell what each slot means although
    slot meanings change every step. The history (execution counts) is kept by this wrapper and cleared
    on reset. Hashing is stable across processes (CRC-32); see :mod:`pilot_envs.wrappers.features`.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        text_dim: int = 256,
        task_dim: int = 64,
        plan_dim: int = 64,
        command_dim: int = 64,
        ngrams: int = 2,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, text_dim=text_dim, task_dim=task_dim, plan_dim=plan_dim, command_dim=command_dim, ngrams=ngrams
        )
        gym.Wrapper.__init__(self, env)
        discrete = next((e for e in _chain(env) if isinstance(e, DiscreteCommands)), None)
        if discrete is None:
            raise TypeError("FeaturizeObservation describes command slots: wrap the env with DiscreteCommands first")
        for name, dim in (("text_dim", text_dim), ("task_dim", task_dim), ("plan_dim", plan_dim)):
            if dim < 1:
                raise ValueError(f"{name} must be >= 1, got {dim}")
        if command_dim < 1 or ngrams < 1:
            raise ValueError("command_dim and ngrams must be >= 1")
        self.text_dim, self.task_dim, self.plan_dim = text_dim, task_dim, plan_dim
        self.command_dim, self.ngrams = command_dim, ngrams
        self.max_commands = k = discrete.max_commands
        num_subgoals = env.observation_space["subgoals_done"].n
        spec = env.spec if env.spec is not None else env.unwrapped.spec
        self._horizon = spec.max_episode_steps if spec is not None and spec.max_episode_steps else 0

        def box(*shape: int) -> spaces.Box:
            return spaces.Box(0.0, 1.0, shape=shape, dtype=np.float32)

        self.observation_space = spaces.Dict(
            {
                "text": box(text_dim),
                "task": box(task_dim),
                "plan": box(2 * plan_dim),
                "progress": box(1),
                "subgoals_done": box(int(num_subgoals)),
                "elapsed": box(1),
                "action_mask": box(k),
                "commands": box(k, command_dim + len(RELATION_NAMES)),
            }
        )
        self._counts: Counter[str] = Counter()
        self._last = ""
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._counts.clear()
        self._last, self._steps = "", 0
        return self.featurize(obs, info), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        executed = info.get("command", "") if info.get("action_valid", False) else ""
        if executed:
            self._counts[executed] += 1
        self._last = executed
        return self.featurize(obs, info), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """The masks of the :class:`DiscreteCommands` below (for ``MaskablePPO``)."""
        return self.env.get_wrapper_attr("action_masks")()

    def featurize(self, obs: dict[str, Any], info: dict[str, Any]) -> dict[str, np.ndarray]:
        """The feature Dict of one observation (uses this episode's command history)."""
        plan = tuple(obs.get("plan", ()))
        at = int(info.get("plan_step", 0))
        current = plan[at] if 0 <= at < len(plan) else ""
        commands = tuple(obs["admissible_commands"])
        mask = np.zeros(self.max_commands, dtype=np.float32)
        mask[: len(commands)] = 1.0
        elapsed = min(1.0, self._steps / self._horizon) if self._horizon else 0.0
        return {
            "text": bag_of_words(obs["text"], self.text_dim, ngrams=self.ngrams),
            "task": bag_of_words(obs["task"], self.task_dim, ngrams=self.ngrams),
            "plan": np.concatenate(
                [bag_of_words(current, self.plan_dim, ngrams=self.ngrams), bag_of_words(plan, self.plan_dim, ngrams=self.ngrams)]
            ),
            "progress": np.asarray(obs["progress"], dtype=np.float32).reshape(1),
            "subgoals_done": np.asarray(obs["subgoals_done"], dtype=np.float32),
            "elapsed": np.array([elapsed], dtype=np.float32),
            "action_mask": mask,
            "commands": command_features(
                commands,
                slots=self.max_commands,
                dim=self.command_dim,
                task=obs["task"],
                text=obs["text"],
                plan_step=current,
                counts=self._counts,
                last=self._last,
                ngrams=self.ngrams,
            ),
        }


def make_sb3_env(
    env_id: str,
    *,
    max_commands: int = 64,
    text_dim: int = 256,
    task_dim: int = 64,
    plan_dim: int = 64,
    command_dim: int = 64,
    **env_kwargs: Any,
) -> FeaturizeObservation:
    """``gym.make(env_id, **env_kwargs)`` wrapped in :class:`DiscreteCommands` and :class:`FeaturizeObservation`."""
    env = gym.make(env_id, **env_kwargs)
    env = DiscreteCommands(env, max_commands=max_commands)
    return FeaturizeObservation(
        env, text_dim=text_dim, task_dim=task_dim, plan_dim=plan_dim, command_dim=command_dim
    )
