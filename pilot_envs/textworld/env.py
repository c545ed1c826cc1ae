"""``PilotTextWorld-v0``: games made by TextWorld's own generators, played by the real TextWorld engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pilot_envs.core.text_env import TextTaskEnv
from pilot_envs.textworld.backend import TextWorldBackend

__all__ = ["PilotTextWorldEnv"]


class PilotTextWorldEnv(TextTaskEnv):
    """
    ## Description
    Text adventure games made by TextWorld (Côté et al., 2018), Microsoft's generator of Inform 7 games, and
    played by the real TextWorld engine (the compiled game runs in Jericho's Z-machine; TextWorld's game logic
    tracks the quest). Games come from TextWorld's own generators, offline (the Inform 7 compiler ships in the
    ``textworld`` wheel): the ``tw-make`` challenges ``coin_collector`` (walk a chain of rooms to a coin),
    ``treasure_hunter`` (find an object, with doors, containers and keys at higher levels), ``cooking`` (the
    "First TextWorld Problems" games: read the recipe, gather, cut and cook ingredients, prepare and eat the
    meal), ``simple`` (tw-simple's fixed house), and ``custom`` (``tw-make custom``: rooms, objects and quest
    length of your choice).

    A game is generated once from its seed, compiled, and cached on disk; afterwards a reset takes milliseconds.
    Cached games are verified before use (a SHA-256 written with them) and made again when damaged, since the
    interpreter would otherwise end the whole process on a truncated story file.
    Generation runs in a helper process with a fixed hash seed, so the same (generator, settings, seed) is the
    same game on every machine. Fill the cache ahead of time with
    ``python -m pilot_envs.textworld.generate --challenge cooking --split train``.

    ## Action Space
    ``PilotText(8192)``: free text, parsed like every pilot-envs env (a bare command, tagged LLM output
    ``<think>..</think><action>..</action>``, ``<plan>..</plan>``, or ReAct ``Thought: .. Action: ..``). Commands
    are Inform 7's: ``go east``, ``open wooden door``, ``unlock wooden door with old key``,
    ``take passkey from bench``, ``insert key into chest``, ``put milk on stove``, ``slice carrot with knife``,
    ``cook carrot with oven``, ``prepare meal``, ``eat meal``, ``examine X``, ``look``, ``inventory``... Anything
    the game does not understand or that does nothing is answered in Inform 7's own words (``That's not a verb I
    recognise.``, ``You can't see any such thing.``, ``That's already open.``) with ``action_valid=False`` and the
    state unchanged. Story-level commands that would restart, quit, save, restore or undo the game behind the
    tracker's back are refused with ``Nothing happens.``.

    ## Observation Space
    A ``Dict``:

    | key | space | meaning |
    |---|---|---|
    | ``text`` | PilotText(8192) | the game's text, as TextWorld gives it (reset: banner, objective and first room) |
    | ``task`` | PilotText(1024) | the quest's objective |
    | ``plan`` | TextList(64) | the global plan in effect (``plan_mode``) |
    | ``subgoals_done`` | MultiBinary(32) | the quest's milestones reached, in order (padded with 0) |
    | ``progress`` | Box(0, 1, (1,)) | how much of the winning policy is done: 1 - len(policy now) / len(policy at reset) |
    | ``admissible_commands`` | TextList(1024) | TextWorld's admissible commands, sorted |

    Milestones come from the quest's winning policy at reset: each run of moves is one milestone
    (``go to the kitchen``), every other policy command is one (``take passkey from bench``). Milestone ``i`` is
    done when the remaining winning policy is no longer than what is left after it, so progress and milestones
    are functions of the state (a detour does not count; putting the key back undoes progress).

    ## Starting State
    Every split is a fixed list of games: ``train``, ``valid`` and ``test`` (``split_sizes``, default 100 / 20 /
    20), game ``i`` of a split having a fixed seed. ``reset(seed=s)`` without options draws a training game from
    ``s``; ``options={"split": S, "task_index": i}`` loads game ``i`` of ``S`` (a ``task_index`` without a
    ``split`` is a ``ValueError``, as in every pilot-envs env); ``{"split": S}`` draws one from the seed;
    ``{"game_seed": n}`` generates the game of TextWorld seed ``n`` (unlimited procedural games). The cooking
    generator keeps its own recipe split: valid/test games use recipes never seen in train.

    ## Rewards
    ``reward_mode="sparse"``: ``success_reward`` when the quest is completed. ``"progress"``:
    ``success_reward * won + gamma * progress' - progress`` (potential-based on the shrinking winning policy:
    telescopes over an episode). ``"milestone"``: ``milestone_bonus`` (default 1/K) the first time each
    milestone is reached, plus success. Every mode subtracts ``invalid_action_penalty`` when the input did nothing.

    ## Episode End
    ### Termination
    The quest is completed (``won``: TextWorld's ``*** The End ***``) or lost (``lost``: e.g. eating an
    ingredient the recipe needs in a cooking game).
    ### Truncation
    50 steps (``max_episode_steps`` in the registration).

    ## Information
    ``won``, ``lost``, ``progress``, ``subgoals`` (milestone texts), ``subgoals_done``, ``expert_action`` and
    ``expert_plan`` (TextWorld's ``policy_commands``: the winning policy from the current state, recomputed after
    every step), ``action_valid`` (TextWorld's tracker saw the command change or inspect the world: ``look``,
    ``examine`` and ``inventory`` count, ``wait`` does not), ``format_ok``, ``command``, ``plan_score``,
    ``plan_step``, ``plan_coverage``, ``state_hash`` (hash of the game and TextWorld's facts), ``task_type`` (the challenge),
    ``task_id`` (TextWorld's game uuid), ``split``.

    ## Snapshots
    ``pilot_envs.get_state(env)`` / ``pilot_envs.set_state(env, snapshot)``: the whole episode state as plain data
    (pickles, writes as JSON), restorable in this env or a fresh one of the same id and settings, in any process.
    The game is restored by loading the same game and replaying the episode's commands (TextWorld games are
    deterministic), then checked against the snapshot's ``state_hash``; a mismatch raises
    ``pilot_envs.SnapshotError``, as does a snapshot of another env id, pilot-envs version or settings.

    ## Arguments
    ```python
    gym.make(
        "PilotTextWorld-v0",
        challenge="treasure_hunter",  # "coin_collector" | "treasure_hunter" | "cooking" | "simple" | "custom"
        level=None,                   # coin_collector 1..300 (at most 100 rooms), treasure_hunter 1..30; default 5
        settings=None,                # generator settings, e.g. cooking {"recipe": 2, "take": 2, "go": 6,
                                      #   "open": True, "cook": True, "cut": True, "drop": False},
                                      #   simple {"rewards": "dense", "goal": "detailed"},
                                      #   custom {"nb_rooms": 5, "nb_objects": 10, "quest_length": 5, "quest_breadth": 1}
        split_sizes=None,             # {"train": 100, "valid": 20, "test": 20}
        cache_dir=None,               # default $PILOT_ENVS_CACHE_DIR or ~/.cache/pilot-envs
        plan_mode="none",             # "none" | "oracle" (milestones of the winning policy) | "agent"
        reward_mode="sparse",         # "sparse" | "progress" | "milestone"
        success_reward=1.0,
        invalid_action_penalty=0.0,
        gamma=1.0,
        milestone_bonus=None,
        render_mode=None,             # "ansi" | "human"
    )
    ```
    Pickling works mid-episode: the copy reloads the game and replays the episode's commands.

    ## Version History
    * v0: initial release (TextWorld 1.7).
    """

    def __init__(
        self,
        *,
        challenge: str = "treasure_hunter",
        level: int | None = None,
        settings: Mapping[str, Any] | None = None,
        split_sizes: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        plan_mode: str = "none",
        reward_mode: str = "sparse",
        success_reward: float = 1.0,
        invalid_action_penalty: float = 0.0,
        gamma: float = 1.0,
        milestone_bonus: float | None = None,
        render_mode: str | None = None,
    ):
        backend = TextWorldBackend(
            challenge=challenge, level=level, settings=settings, split_sizes=split_sizes, cache_dir=cache_dir
        )
        super().__init__(
            backend,
            plan_mode=plan_mode,
            reward_mode=reward_mode,
            success_reward=success_reward,
            invalid_action_penalty=invalid_action_penalty,
            gamma=gamma,
            milestone_bonus=milestone_bonus,
            render_mode=render_mode,
        )
