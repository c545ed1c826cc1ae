"""The real ALFWorld engine (TextWorld PDDL + ALFWorld's wrappers) behind a three-method interface.

Used to check the native engine command by command: export a scene with
:func:`pilot_envs.alfworld.export.export_game`, then::

    engine = RealALFWorld(path)
    text, admissible, won = engine.reset()
    text, admissible, won = engine.step("go to countertop 1")
    engine.close()

The game is played exactly as ALFWorld plays it (``textworld.gym.register_games`` with ALFWorld's
``AlfredDemangler`` and ``AlfredInfos`` wrappers). alfworld and textworld are imported on first use only.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

__all__ = ["RealALFWorld"]

_INSTALL_HINT = "the real ALFWorld engine needs alfworld and textworld: pip install pilot-envs[alfworld]"
_ids = itertools.count()


def _import_engine() -> tuple[Any, Any, Any, Any]:
    try:
        import textworld
        import textworld.gym
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return textworld, textworld.gym, AlfredDemangler, AlfredInfos


class RealALFWorld:
    """One ALFWorld game file played in the real engine.

    ``max_episode_steps`` is ALFWorld's step limit (50): after it, the engine ignores commands.
    ``policy_commands=True`` also asks the planner for a plan each step (see :attr:`policy_commands`).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_episode_steps: int = 50,
                 policy_commands: bool = False) -> None:
        textworld, tw_gym, demangler, infos = _import_engine()
        request = textworld.EnvInfos(won=True, admissible_commands=True, policy_commands=policy_commands)
        env_id = tw_gym.register_games([os.fspath(path)], request, max_episode_steps=max_episode_steps,
                                       wrappers=[demangler(), infos], name=f"pilot-alfworld-{next(_ids)}")
        self._env = tw_gym.make(env_id)
        self.policy_commands: list[str] = []

    def _unpack(self, obs: str, info: dict[str, Any]) -> tuple[str, list[str], bool]:
        self.policy_commands = list(info.get("policy_commands") or [])
        return obs, list(info["admissible_commands"]), bool(info["won"])

    def reset(self) -> tuple[str, list[str], bool]:
        """Start (or restart) the game: ``(intro text, admissible commands, won)``."""
        obs, info = self._env.reset()
        return self._unpack(obs, info)

    def step(self, command: str) -> tuple[str, list[str], bool]:
        """Run one command: ``(feedback, admissible commands, won)``."""
        obs, _score, _done, info = self._env.step(command)
        return self._unpack(obs, info)

    def close(self) -> None:
        """Release the engine."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> RealALFWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
