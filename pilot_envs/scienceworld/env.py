"""``PilotScienceWorld-v0``: the real ScienceWorld engine behind the common contract."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pilot_envs.core.text_env import TextTaskEnv
from pilot_envs.scienceworld.backend import ScienceWorldBackend

__all__ = ["PilotScienceWorldEnv"]


class PilotScienceWorldEnv(TextTaskEnv):
    """
    ## Description
    ScienceWorld (Wang et al., 2022): 30 elementary-science tasks (boiling water, building circuits, growing
    plants, Mendelian genetics, ...) in a simulated house with physics, chemistry, electricity and biology. This
    env runs the real engine: the ``scienceworld`` package's Java simulator, one JVM per env. Text, actions,
    scoring and task variations are ScienceWorld's; the env adds the contract every pilot-envs env shares
    (subgoals, progress, plans, reward modes, the expert, the same info keys).

    Tasks (``task=`` takes a name, an id such as ``"1-1"``, a list, or None for all 30): ``boil``, ``melt``,
    ``freeze``, ``change-the-state-of-matter-of``, ``use-thermometer``, ``measure-melting-point-known-substance``,
    ``measure-melting-point-unknown-substance``, ``power-component``,
    ``power-component-renewable-vs-nonrenewable-energy``, ``test-conductivity``,
    ``test-conductivity-of-unknown-substances``, ``find-living-thing``, ``find-non-living-thing``, ``find-plant``,
    ``find-animal``, ``grow-plant``, ``grow-fruit``, ``chemistry-mix``, ``chemistry-mix-paint-secondary-color``,
    ``chemistry-mix-paint-tertiary-color``, ``lifespan-longest-lived``, ``lifespan-shortest-lived``,
    ``lifespan-longest-lived-then-shortest-lived``, ``identify-life-stages-1``, ``identify-life-stages-2``,
    ``inclined-plane-determine-angle``, ``inclined-plane-friction-named-surfaces``,
    ``inclined-plane-friction-unnamed-surfaces``, ``mendelian-genetics-known-plant``,
    ``mendelian-genetics-unknown-plant``.

    Needs Java 8+ (``apt-get install default-jre-headless``): ``gym.make`` fails at once with that hint when
    ``java`` is missing. The JVM starts on the first ``reset`` (about 1-2 s) and is shut down by ``close()``, at
    interpreter exit, or when the owning process dies. A JVM that dies during an episode (in a step, or between two
    steps) loses the episode: every ``step`` then raises ``pilot_envs.scienceworld.engine.EngineDied`` (with the
    pid and exit code) until ``reset`` starts a new JVM. Ctrl-C during a step raises ``KeyboardInterrupt``; the
    JVM, which may still be busy with the command, is stopped, and the next ``step`` replays the episode without
    that command in a new JVM (as an unpickled copy does).

    ## Action Space
    ``PilotText(8192)``: free text, parsed like every pilot-envs env (a bare command, tagged LLM output
    ``<think>..</think><action>..</action>``, ``<plan>..</plan>``, or ReAct ``Thought: .. Action: ..``). Commands
    are ScienceWorld's: ``open door to kitchen``, ``go to kitchen``, ``pick up thermometer``,
    ``move metal pot to stove``, ``activate stove``, ``use thermometer in inventory on water``,
    ``focus on water``, ``connect battery anode to orange wire terminal 1``, ``pour X into Y``, ``mix X``,
    ``wait``/``wait1``, ``look around``, ``look at X``, ``inventory``, ``task``, ``help``... Text the engine cannot
    parse is answered with its own ``No known action matches that input.`` and changes nothing. An ambiguous
    command is answered with ScienceWorld's numbered question; the admissible commands are then ``0``, ``1``, ...
    and the next input answers it (anything else cancels it and lets one tick pass, as in ScienceWorld).
    Careful: ``focus on X`` on the wrong object fails the task (ScienceWorld's rule).

    ## Observation Space
    A ``Dict``:

    | key | space | meaning |
    |---|---|---|
    | ``text`` | PilotText(8192) | the engine's answer, as ScienceWorld words it (reset: its ``look around``) |
    | ``task`` | PilotText(1024) | ScienceWorld's task description |
    | ``plan`` | TextList(64) | the global plan in effect (``plan_mode``) |
    | ``subgoals_done`` | MultiBinary(16) | ScienceWorld's sequential goal checklist: items done, in order |
    | ``progress`` | Box(0, 1, (1,)) | ScienceWorld's score / 100 (0 after a failure) |
    | ``admissible_commands`` | TextList(max_commands) | ScienceWorld's valid actions, sorted (often 400-4,500) |

    ## Starting State
    ``reset(seed=s)`` without options draws a task uniformly from ``task``, then one of its training variations.
    ``options={"split": S, "task_index": i}`` loads the i-th variation of split ``S`` (``train``, ``dev``,
    ``test``: ScienceWorld's own 50/25/25 split of every task's variations), counting through the tasks in
    ScienceWorld's order (a ``task_index`` without a ``split`` is a ``ValueError``, as in every pilot-envs env);
    ``env.unwrapped.backend.splits()`` gives the sizes (3,592 / 1,796 / 1,819 for all 30 tasks). ``{"split": S}``
    alone draws from the seed; ``{"task": T}`` (with ``"split"``/``"task_index"``) restricts to one of the env's
    tasks; ``{"task": T, "variation": v}`` loads a variation by its index.

    ## Rewards
    ``reward_mode="sparse"``: ``success_reward`` when the task is completed. ``"progress"``:
    ``success_reward * won + gamma * progress' - progress``, progress being ScienceWorld's score / 100, so the
    dense reward is the score change (potential-based; telescopes over an episode). ``"milestone"``:
    ``milestone_bonus`` (default 1/K) the first time each item of the sequential checklist is done, plus
    success. Every mode subtracts ``invalid_action_penalty`` for an input that did nothing.

    ## Episode End
    ### Termination
    ScienceWorld completes the task (score 100: ``won``) or fails it (score below 0, e.g. focusing on the wrong
    object: ``lost``).
    ### Truncation
    100 steps (``max_episode_steps`` in the registration; ScienceWorld's own default limit).

    ## Information
    ``won``, ``lost``, ``progress``, ``subgoals`` (the sequential checklist), ``subgoals_done``,
    ``expert_action`` and ``expert_plan`` (the rest of ScienceWorld's gold action path while the agent follows
    it; empty once it leaves the path, since ScienceWorld cannot plan from an arbitrary state),
    ``action_valid``, ``format_ok``, ``command``, ``plan_score``, ``plan_step``, ``plan_coverage``, ``state_hash``
    (a hash of the engine's view of the state: room, inventory, clock, score, checklist, valid actions), ``task_type`` (the task
    name), ``task_id`` (``"boil/var3"``), ``split``.

    ## Snapshots
    ``pilot_envs.get_state(env)`` / ``pilot_envs.set_state(env, snapshot)``: the whole episode state as plain data
    (pickles, writes as JSON), restorable in this env or a fresh one of the same id and settings, in any process.
    The JVM's world is restored by loading the same task variation and replaying the episode's commands, then
    checked against the snapshot's ``state_hash``. Exact only with ``deterministic=True``: otherwise ScienceWorld's
    own randomness may lead the replay elsewhere, and the restore raises ``pilot_envs.SnapshotError`` (as does a
    snapshot of another env id, pilot-envs version or settings).

    ## Arguments
    ```python
    gym.make(
        "PilotScienceWorld-v0",
        task=None,                   # a name, an id ("1-1"), a list of them, or None: all 30 tasks
        simplifications="",          # "easy", or names: teleportAction, openDoors, openContainers,
                                     #   selfWateringFlowerPots, noElectricalAction (comma-separated or a list)
        max_commands=8192,           # cap on admissible_commands (kept sorted; the first max_commands are shown)
        gold_path=True,              # compute the gold path (expert + oracle plan); cached on disk per variation
        deterministic=False,         # True: the same variation reads the same in every JVM (about +25% engine CPU)
        jvm_options=(),              # extra JVM flags, e.g. ("-Xmx2g",) or ("-XX:TieredStopAtLevel=1",)
        cache_dir=None,              # gold paths + the JVM class archive; default $PILOT_ENVS_CACHE_DIR
                                     #   or ~/.cache/pilot-envs
        plan_mode="none",            # "none" | "oracle" (the gold path, condensed to steps) | "agent"
        reward_mode="sparse",        # "sparse" | "progress" | "milestone"
        success_reward=1.0,
        invalid_action_penalty=0.0,
        gamma=1.0,
        milestone_bonus=None,
        render_mode=None,            # "ansi" | "human"
    )
    ```
    The gold path of a variation is computed once by the engine (from 0.1 s to about 30 s for Mendelian
    genetics) and then read from the cache.

    Determinism: ScienceWorld lists a room's objects in Java hash-set order, which depends on everything the JVM
    did before, so the same variation can list objects (and name look-alike ones, e.g. three wood cups)
    differently from one reset to the next; it is registered ``nondeterministic=True``. ``deterministic=True``
    starts the JVM with a constant identity hash (``-XX:hashCode=2``): every load of a variation, in any JVM, is
    then worded identically and seeded rollouts repeat exactly (what GRPO-style groups and GiGPO's state hashes
    need), for about 25% more engine CPU per step. Pickling works mid-episode: the copy starts its own JVM and
    replays the episode's commands, which is exact with ``deterministic=True``.

    ## Version History
    * v0: initial release (ScienceWorld 1.2.3).
    """

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
        plan_mode: str = "none",
        reward_mode: str = "sparse",
        success_reward: float = 1.0,
        invalid_action_penalty: float = 0.0,
        gamma: float = 1.0,
        milestone_bonus: float | None = None,
        render_mode: str | None = None,
    ):
        backend = ScienceWorldBackend(
            task=task,
            simplifications=simplifications,
            max_commands=max_commands,
            gold_path=gold_path,
            jvm_options=jvm_options,
            deterministic=deterministic,
            cache_dir=cache_dir,
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

    @property
    def engine_pid(self) -> int | None:
        """The pid of this env's JVM (None before the first reset and after ``close()``)."""
        return self.backend.engine_pid
