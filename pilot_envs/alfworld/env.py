"""``PilotALFWorld-v0``: the native ALFWorld-compatible household env."""

from __future__ import annotations

from collections.abc import Sequence

from pilot_envs.alfworld.backend import HouseholdBackend
from pilot_envs.core.text_env import TextTaskEnv

__all__ = ["PilotALFWorldEnv"]


class PilotALFWorldEnv(TextTaskEnv):
    """
    ## Description
    A household text world that plays like ALFWorld (Shridhar et al., 2021): the same rooms (kitchens,
    living rooms, bedrooms, bathrooms with ALFRED's receptacle and object classes), the same six task
    types and goal templates, the same command grammar and feedback text (ALFWorld >= 0.4; the pre-0.4
    ``put X in/on Y`` is always accepted). It is a pure-Python engine, verified against the real ALFWorld
    engine command by command (``tests/alfworld/test_differential.py``), so prompts and agents carry over.

    On top of ALFWorld it gives what training needs: the task's milestones (subgoals) and progress in every
    observation, an optional global plan (the oracle's, or the agent's own declared with ``<plan>``),
    dense progress or milestone rewards, an oracle expert in ``info``, fixed splits that need no download,
    unlimited procedural tasks, and tens of thousands of steps per second.

    Task types: ``pick_and_place_simple``, ``look_at_obj_in_light``, ``pick_clean_then_place_in_recep``,
    ``pick_heat_then_place_in_recep``, ``pick_cool_then_place_in_recep``, ``pick_two_obj_and_place``.

    ## Action Space
    ``PilotText(8192)``: free text. A bare command (``go to cabinet 1``), tagged LLM output
    (``<think>..</think><action>go to cabinet 1</action>``, ``<plan>Step 1: ..</plan>``,
    ``<switch>KEEP</switch><subgoal>..</subgoal><action>..</action>``) or ReAct text
    (``Thought: .. Action: ..``, ``> go to cabinet 1``, ``think: ..``). Commands: ``go to R``, ``open R``,
    ``close R``, ``take O from R``, ``move O to R`` (also ``put O in/on R``), ``heat|cool|clean O with R``,
    ``use O``, ``slice O with K``, ``examine X``, ``inventory``, ``look``, ``help``. Anything that is not
    an applicable command answers ``Nothing happens.`` and changes nothing; reasoning-only or plan-only
    text answers ``OK.`` and changes nothing.

    ## Observation Space
    A ``Dict``:

    | key | space | meaning |
    |---|---|---|
    | ``text`` | PilotText(8192) | the feedback, exactly as ALFWorld words it |
    | ``task`` | PilotText(1024) | the goal sentence, e.g. ``put a clean mug in cabinet`` |
    | ``plan`` | TextList(64) | the global plan in effect (``plan_mode``) |
    | ``subgoals_done`` | MultiBinary(8) | milestones reached, in order (padded with 0) |
    | ``progress`` | Box(0, 1, (1,)) | milestones reached / number of milestones |
    | ``admissible_commands`` | TextList(512) | the commands that do something now, sorted |

    ## Starting State
    The agent stands in the middle of the room. ``reset(seed=s)`` without options samples a procedural
    training task from ``s``. ``reset(options={"split": S, "task_index": i})`` loads task ``i`` of a fixed
    split (``train`` 3553, ``valid_seen`` 140, ``valid_unseen`` 134; valid_unseen rooms are never used
    in train); ``{"split": S}`` alone draws an index from the seed; ``{"scene": Scene(...)}`` plays a scene
    you built.

    ## Rewards
    ``reward_mode="sparse"``: ``success_reward`` on success (ALFWorld's reward). ``"progress"``:
    ``success_reward * won + gamma * progress' - progress`` (potential-based; telescopes over an episode).
    ``"milestone"``: ``milestone_bonus`` (default 1/K) the first time each milestone is reached, plus
    success. Every mode subtracts ``invalid_action_penalty`` for an action that did nothing. The settings
    are checked at ``gym.make``: finite real numbers (not bools or strings), ``invalid_action_penalty >= 0``,
    ``0 <= gamma <= 1``, ``milestone_bonus`` a number or None; ``TypeError`` / ``ValueError`` otherwise.

    ## Episode End
    ### Termination
    The task is solved. Stepping a terminated episode does nothing until ``reset()``: the world is not
    stepped, the reward is exactly 0.0 (no success reward again, no penalty), ``terminated`` stays True,
    the observation is the final one, and the info is the final one with ``action_valid=False`` and
    ``command=""`` (``won`` and ``progress`` unchanged); the first such step warns to call ``reset()``.
    ### Truncation
    50 steps (``max_episode_steps`` in the registration), as in ALFWorld. Reasoning-only turns count.
    Truncation is ``TimeLimit``'s: a truncated episode is not terminated, and stepping it again keeps
    stepping the world while ``TimeLimit`` answers ``truncated=True``; call ``reset()``. ``TimeLimit`` also
    counts the no-op steps after termination.

    ## Information
    ``won``, ``lost``, ``progress``, ``subgoals`` (milestone texts), ``subgoals_done``, ``expert_action``
    and ``expert_plan`` (the oracle's next command and remaining commands), ``action_valid``,
    ``format_ok`` (the action text was well formed), ``command`` (what was executed), ``plan_score``
    (how well the agent's declared plan covers and orders the milestones, 0..1), ``plan_step`` (first plan
    step not yet achieved), ``plan_coverage`` (per milestone: the declared plan covers it, in an executable
    order), ``state_hash`` (stable across processes), ``task_type``, ``task_id``, ``split``.

    ## Snapshots
    ``pilot_envs.get_state(env)`` / ``pilot_envs.set_state(env, snapshot)``: the whole episode state as plain data
    (pickles, writes as JSON), restorable in this env or a fresh one of the same id and settings, in any process;
    every later observation, reward and info (and ``TimeLimit``'s step count) equals the original's. The engine's
    state is copied exactly (the scene and the changed facts, in time proportional to the state: no replay). A
    snapshot of another env id, pilot-envs version or settings raises ``pilot_envs.SnapshotError``.
    ``pilot-envs replay`` re-runs recorded transcripts.

    ## Arguments
    ```python
    gym.make(
        "PilotALFWorld-v0",
        plan_mode="none",            # "none" | "oracle" | "agent"
        reward_mode="sparse",        # "sparse" | "progress" | "milestone"
        success_reward=1.0,
        invalid_action_penalty=0.0,  # subtracted when an action does nothing
        gamma=1.0,                   # discount of the progress potential
        milestone_bonus=None,        # None: 1 / number of milestones
        task_types=None,             # restrict to some of the six task types
        max_receptacles=None,        # small scenes: at most this many receptacles
        max_objects=None,            # small scenes: at most this many objects
        grammar="alfworld",          # "legacy": pre-0.4 wording ("You put the X in/on the Y.", "loc N")
        render_mode=None,            # "ansi" | "human"
    )
    ```
    ``PilotALFWorldSmall-v0`` is the same env with small scenes (6 receptacles, 8 objects) for fast
    curricula; one id per task type (``PilotALFWorld-PickClean-v0`` ...) restricts ``task_types``.

    ## Version History
    * v0: initial release (ALFWorld 0.4.2 text and grammar).
    """

    def __init__(
        self,
        *,
        plan_mode: str = "none",
        reward_mode: str = "sparse",
        success_reward: float = 1.0,
        invalid_action_penalty: float = 0.0,
        gamma: float = 1.0,
        milestone_bonus: float | None = None,
        task_types: Sequence[str] | None = None,
        max_receptacles: int | None = None,
        max_objects: int | None = None,
        grammar: str = "alfworld",
        render_mode: str | None = None,
    ):
        backend = HouseholdBackend(
            task_types=task_types, max_receptacles=max_receptacles, max_objects=max_objects, grammar=grammar
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
