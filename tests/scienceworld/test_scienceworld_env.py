"""PilotScienceWorld-v0 against the real ScienceWorld engine: the task data, subgoals/progress/expert from the
engine, ambiguity and failure, splits, determinism, pickling, and process hygiene (counting JVMs)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

scienceworld = pytest.importorskip("scienceworld", reason="PilotScienceWorld needs the optional scienceworld package")

import pilot_envs  # noqa: E402,F401
from pilot_envs import checks  # noqa: E402
from pilot_envs.scienceworld import engine as sw_engine  # noqa: E402
from pilot_envs.scienceworld import tasks  # noqa: E402
from pilot_envs.scienceworld.backend import NO_MATCH, condense_gold_path, parse_goal_progress  # noqa: E402

if sw_engine.java_executable() is None:
    pytest.skip("ScienceWorld needs Java (apt-get install default-jre-headless)", allow_module_level=True)

ENV_ID = "PilotScienceWorld-v0"
if ENV_ID not in gym.registry:  # until registration.py lists it
    gym.register(ENV_ID, entry_point="pilot_envs.scienceworld.env:PilotScienceWorldEnv", max_episode_steps=100,
                 nondeterministic=True)

# Tag every JVM of this test session (xdist workers share their controller's pid; subprocesses inherit the tag),
# so that the session-end check only looks at our own JVMs on a shared machine.
_SESSION_PID = os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else os.getpid()
SESSION = os.environ.setdefault(sw_engine.SESSION_ENV_VAR, f"pytest-{_SESSION_PID}")
FAST_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")  # short-lived test JVMs: less JIT work at start-up
TASKS = ("lifespan-longest-lived", "boil")
BOIL_HALLWAY = {"task": "boil", "variation": 0}  # starts in the hallway, six closed doors around
LIFESPAN = {"task": "lifespan-longest-lived", "variation": 0}


def make(**kwargs) -> gym.Env:
    """Reproducible envs (``deterministic=True``) unless a test asks otherwise."""
    return gym.make(ENV_ID, **{"task": TASKS, "jvm_options": FAST_JVM, "deterministic": True, **kwargs})


def wait_gone(pids, timeout: float = 15.0) -> set[int]:
    """The pids among ``pids`` still running after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive &= set(sw_engine.jvm_processes())
        if alive:
            time.sleep(0.1)
    return alive


@pytest.fixture(scope="session", autouse=True)
def no_jvm_survives_the_session():
    """At the end of the session (in this process): every JVM closed, none orphaned by a dead process."""
    yield
    sw_engine.close_all()

    def leaked() -> dict[int, int | None]:
        return {pid: parent for pid, (parent, session) in sw_engine.jvm_processes().items()
                if session == SESSION and (parent == os.getpid() or parent is None or not _alive(parent))}

    deadline = time.monotonic() + 15
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leaked()
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"ScienceWorld JVMs survived the test session: {left} (pid -> owner pid)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="module")
def env():
    env = make(plan_mode="oracle", reward_mode="progress", success_reward=10.0)
    yield env
    env.close()


# ---------------------------------------------------------------------------------------------- pure helpers
def test_condense_gold_path():
    gold = ["open door to kitchen", "go to kitchen", "look around", "pick up thermometer",
            *["examine water", "use thermometer on water"] * 3, "wait1", "wait1", "focus on water"]
    assert condense_gold_path(gold) == (
        "open door to kitchen, then go to kitchen",
        "pick up thermometer",
        "examine water, then use thermometer on water (repeat 3 times)",
        "wait1 (repeat 2 times)",
        "focus on water",
    )
    long = [f"move thing {i} to box" for i in range(200)]
    plan = condense_gold_path(long, max_steps=64)
    assert len(plan) <= 64 and ", then ".join(plan).split(", then ") == long


def test_parse_goal_progress_counts_the_done_prefix():
    report = textwrap.dedent("""\
        Sequential Subgoals:
        ----
        0\ttrue\t  GoalFind\tfocus on substance
        1\tfalse\t  GoalChangeStateOfMatter\tsubstance is in a liquid state
        2\ttrue\t  GoalChangeStateOfMatter\tsubstance is in a gaseous state
        ----
        Unordered and Optional Subgoals:
        0\ttrue\t  GoalInRoomWithObject\tbe in same location as water
        """)
    goals, done = parse_goal_progress(report)
    assert goals == ("focus on substance", "substance is in a liquid state", "substance is in a gaseous state")
    assert done == 1


def test_splits_reproduce_scienceworld_rule():
    assert {s: len(tasks.variations("boil", s)) for s in tasks.SPLITS} == {"train": 14, "dev": 7, "test": 9}
    assert tasks.variations("identify-life-stages-2", "test") == (6, 7, 8, 9)
    for task in tasks.TASK_NAMES:
        parts = [set(tasks.variations(task, s)) for s in tasks.SPLITS]
        assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])
    assert tasks.resolve_tasks("1-1") == ("boil",) and len(tasks.resolve_tasks(None)) == 30
    with pytest.raises(ValueError, match="unknown ScienceWorld task"):
        tasks.resolve_tasks("bake-a-cake")
    with pytest.raises(ValueError, match="noElectricalAction"):
        tasks.resolve_simplifications("noElectricalAction", ["power-component"])


# ---------------------------------------------------------------------------------------------- the engine
def test_task_data_matches_the_engine(env):
    env.reset(seed=0, options=LIFESPAN)  # starts the JVM
    sw = env.unwrapped.backend._engine.sw
    assert set(sw.get_task_names()) == set(tasks.TASK_NAMES)
    assert {t: sw.get_max_variations(t) for t in tasks.TASK_NAMES} == tasks.NUM_VARIATIONS
    assert set(sw.get_possible_simplifications()) == set(tasks.SIMPLIFICATIONS)
    for task in ("identify-life-stages-2", "boil", "lifespan-longest-lived"):
        sw.load(task, 0, "", False)
        engine_splits = (sw.get_variations_train(), sw.get_variations_dev(), sw.get_variations_test())
        assert tuple(tuple(v) for v in engine_splits) == tuple(tasks.variations(task, s) for s in tasks.SPLITS)
    env.reset(seed=0)  # the engine's world changed under the env: start a fresh episode


def test_gold_path_solves_with_dense_score_rewards(env):
    obs, info = env.reset(seed=0, options=LIFESPAN)
    assert obs["plan"] and info["expert_plan"] and info["subgoals"]
    assert obs["task"].startswith("Your task is to")
    assert info["task_type"] == "lifespan-longest-lived" and info["task_id"] == "lifespan-longest-lived/var0"
    assert info["split"] == "train" and obs["progress"][0] == 0.0
    total, p_before = 0.0, 0.0
    for _ in range(len(info["expert_plan"])):
        obs, r, term, trunc, info = env.step(info["expert_action"])
        p = float(info["progress"])
        assert r == pytest.approx(10.0 * info["won"] + p - p_before)  # the dense reward is the score change
        total, p_before = total + r, p
        if term:
            break
    assert info["won"] and term and not trunc
    assert info["progress"] == 1.0 and all(info["subgoals_done"]) and obs["subgoals_done"].sum() == len(info["subgoals"])
    assert total == pytest.approx(10.0 + 1.0)


def test_invalid_ambiguous_and_failing_inputs(env):
    obs, info = env.reset(seed=0, options=BOIL_HALLWAY)
    start = info["state_hash"]
    obs, r, term, _, info = env.step("xyzzy")
    assert obs["text"] == NO_MATCH and not info["action_valid"] and info["state_hash"] == start and not term
    # an ambiguous reference: ScienceWorld asks which one; the admissible commands are its numbered choices
    obs, _, _, _, info = env.step("open door")
    assert obs["text"].startswith("Ambiguous request") and info["action_valid"]
    assert obs["admissible_commands"][:2] == ("0", "1") and info["state_hash"] != start
    obs, _, _, _, info = env.step("0")
    assert obs["text"] == "The door is now open." and len(obs["admissible_commands"]) > 100
    assert info["expert_action"] is None  # left the gold path: ScienceWorld cannot plan from here
    # focusing on the wrong thing fails the task
    obs, r, term, _, info = env.step("focus on agent")
    assert term and info["lost"] and not info["won"] and info["progress"] == 0.0


def test_reset_options_address_splits(env):
    backend = env.unwrapped.backend
    sizes = backend.splits()
    assert sizes == {s: sum(len(tasks.variations(t, s)) for t in TASKS) for s in tasks.SPLITS}
    n_lifespan_dev = len(tasks.variations("lifespan-longest-lived", "dev"))
    _, info = env.reset(seed=1, options={"split": "dev", "task_index": n_lifespan_dev - 1})  # counts through tasks
    assert info["task_id"] == f"lifespan-longest-lived/var{tasks.variations('lifespan-longest-lived', 'dev')[-1]}"
    assert info["split"] == "dev"
    _, info = env.reset(seed=1, options={"task": "lifespan-longest-lived", "split": "test", "task_index": 2})
    assert info["task_id"] == f"lifespan-longest-lived/var{tasks.variations('lifespan-longest-lived', 'test')[2]}"
    assert info["split"] == "test"
    for bad, err in (({"split": "dev", "task_index": sizes["dev"]}, ValueError), ({"task": "melt"}, ValueError),
                     ({"task": "boil", "variation": 30}, ValueError), ({"variation": 1}, ValueError),
                     ({"split": "valid"}, ValueError), ({"task_index": "3", "split": "train"}, TypeError)):
        with pytest.raises(err):
            env.reset(seed=0, options=bad)
    full = gym.make(ENV_ID)  # all 30 tasks: ScienceWorld's own split sizes (no JVM needed)
    assert full.unwrapped.backend.splits() == {"train": 3592, "dev": 1796, "test": 1819}
    full.close()


def test_seeded_rollouts_repeat_across_jvms(env):
    """With deterministic=True a variation reads the same in every JVM, whatever that JVM loaded before."""
    env.reset(seed=5, options=BOIL_HALLWAY)  # give this JVM a different history than the fresh one
    fresh = make(plan_mode="oracle", reward_mode="progress", success_reward=10.0)
    try:
        digests = [checks.rollout_digest(e, seed=3, steps=12, options=LIFESPAN) for e in (env, fresh)]
    finally:
        fresh.close()
    assert digests[0] == digests[1]


def test_pickled_env_replays_its_episode(env):
    checks.check_pickle(lambda: make(), seed=4, steps=5)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.engine_pid is None  # a copy never shares or starts a JVM until it is used
    clone.close()


# ---------------------------------------------------------------------------------------------- processes
def test_jvm_starts_lazily_and_close_stops_it():
    env = make(deterministic=False)  # ScienceWorld's default JVM
    assert env.unwrapped.engine_pid is None
    env.reset(seed=0, options=LIFESPAN)
    pid = env.unwrapped.engine_pid
    assert sw_engine.jvm_processes().get(pid) == (os.getpid(), SESSION)
    env.close()
    assert pid not in sw_engine.jvm_processes()  # close() waits for the process to exit
    env.close()  # idempotent


def test_jvm_death_mid_episode_is_reported_and_reset_recovers(env):
    env.reset(seed=0, options=LIFESPAN)
    pid = env.unwrapped.engine_pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(sw_engine.EngineDied, match=rf"pid {pid}.*reset\(\)"):
        env.step("look around")
    with pytest.raises(sw_engine.EngineDied):
        env.step("look around")  # the episode stays lost
    obs, info = env.reset(seed=0, options=LIFESPAN)
    assert env.unwrapped.engine_pid not in (None, pid)
    obs, *_ = env.step(info["expert_action"])
    assert obs["text"]


def test_jvm_death_between_steps_is_reported_too(env):
    """Not only a JVM that dies during a call: one found dead at the next step loses the episode as well (no silent
    restart and replay), and reset() starts a new JVM."""
    _, info = env.reset(seed=0, options=LIFESPAN)
    engine = env.unwrapped.backend._engine
    os.kill(engine.pid, signal.SIGKILL)
    engine.proc.wait()  # surely gone before the step
    with pytest.raises(sw_engine.EngineDied, match=rf"pid {engine.pid}\) exited with code -9"):
        env.step(info["expert_action"])
    with pytest.raises(sw_engine.EngineDied):
        env.step(info["expert_action"])
    _, info = env.reset(seed=0, options=LIFESPAN)
    assert env.unwrapped.engine_pid not in (None, engine.pid)


class _SlowServer:
    """The engine's server, except that ``step`` blocks in the JVM for 20 s (a stand-in for a long engine call)."""

    def __init__(self, engine):
        self._server, self._sleep = engine.server, engine.sw._gateway.jvm.java.lang.Thread.sleep

    def __getattr__(self, name):
        return getattr(self._server, name)

    def step(self, command):
        return self._sleep(20_000)


def test_ctrl_c_during_a_step_raises_keyboard_interrupt_and_the_episode_goes_on(env, caplog):
    """py4j turns SIGINT during a call into an AttributeError (and logs it as an error): the env must raise
    KeyboardInterrupt, stop the JVM it left busy, and replay the episode without the interrupted command."""
    _, info = env.reset(seed=0, options=LIFESPAN)
    _, _, _, _, info = env.step(info["expert_action"])
    clone = pickle.loads(pickle.dumps(env))  # where the episode is before the interrupted step
    backend = env.unwrapped.backend
    old = backend._engine
    old.server = _SlowServer(old)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            env.step(info["expert_action"])
    finally:
        timer.cancel()
    assert time.monotonic() - start < 10  # interrupted, not waited out
    assert old.closed and old.proc.poll() is not None and not wait_gone([old.pid], timeout=5)
    assert not [r for r in caplog.records if "KeyboardInterrupt" in r.getMessage()]
    try:
        after = env.step(info["expert_action"])  # a new JVM, the episode replayed
        expected = clone.step(info["expert_action"])
    finally:
        clone.close()
    assert checks.obs_equal(after, expected) and env.unwrapped.engine_pid not in (None, old.pid)


def test_task_index_needs_a_split():
    e = make()
    with pytest.raises(ValueError, match=r"options\['task_index'\] needs options\['split'\] \(train, dev or test\)"):
        e.reset(seed=0, options={"task_index": 3})
    assert e.unwrapped.engine_pid is None  # rejected before any JVM starts
    e.close()


def test_no_jvm_survives_exit_or_an_exception():
    script = textwrap.dedent(f"""
        import gymnasium as gym, pilot_envs
        if "{ENV_ID}" not in gym.registry:
            gym.register("{ENV_ID}", entry_point="pilot_envs.scienceworld.env:PilotScienceWorldEnv")
        envs = [gym.make("{ENV_ID}", task="lifespan-longest-lived", jvm_options={FAST_JVM!r}) for _ in range(2)]
        for e in envs:
            e.reset(seed=0)
        print(" ".join(str(e.unwrapped.engine_pid) for e in envs), flush=True)
        raise RuntimeError("boom")  # never closed: the atexit hook has to do it
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "boom" in out.stderr
    pids = {int(p) for p in out.stdout.split()}
    assert len(pids) == 2
    assert not wait_gone(pids, timeout=5)


def test_vector_envs_sync_equals_async_and_killed_workers_take_their_jvm():
    kwargs = {"task": "lifespan-longest-lived", "jvm_options": FAST_JVM, "deterministic": True}
    vecs = {mode: gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, **kwargs) for mode in ("sync", "async")}
    try:
        outs = {mode: v.reset(seed=4) for mode, v in vecs.items()}
        assert checks.obs_equal(outs["sync"], outs["async"])
        rng = np.random.default_rng(0)
        for _ in range(4):
            obs = outs["sync"][0]
            actions = [checks.random_admissible_policy({"admissible_commands": obs["admissible_commands"][i]}, {}, rng)
                       for i in range(2)]
            outs = {mode: v.step(actions) for mode, v in vecs.items()}
            assert checks.obs_equal(outs["sync"], outs["async"])
        async_env = vecs["async"]
        jvms = list(async_env.call("engine_pid"))
        workers = [p.pid for p in async_env.processes]
        assert all(sw_engine.jvm_processes().get(j) == (w, SESSION) for j, w in zip(jvms, workers, strict=True))
        os.kill(workers[0], signal.SIGKILL)
        assert not wait_gone([jvms[0]]), "the JVM of a killed worker must exit with it"
    finally:
        vecs["sync"].close()
        vecs["async"].close(terminate=True)
    assert not wait_gone(jvms)


def test_missing_java_fails_at_make_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(gym.error.DependencyNotInstalled, match="apt-get install default-jre-headless"):
        gym.make(ENV_ID)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(gym.error.DependencyNotInstalled, match="JAVA_HOME"):
        gym.make(ENV_ID)


def test_gold_paths_are_cached_on_disk(env, tmp_path):
    backend = env.unwrapped.backend
    saved = backend.cache_root, dict(backend._gold_memo)
    try:
        backend.cache_root, backend._gold_memo = str(tmp_path), {}
        _, info = env.reset(seed=0, options=LIFESPAN)
        files = list(tmp_path.glob("scienceworld/gold-*/lifespan-longest-lived-0-none.json"))
        assert len(files) == 1 and tuple(__import__("json").loads(files[0].read_text())) == info["expert_plan"]
        assert not list(tmp_path.glob("scienceworld/gold-*/.*.tmp"))
        backend._gold_memo = {}
        files[0].write_text("not json")  # a damaged entry is regenerated, not trusted
        _, again = env.reset(seed=0, options=LIFESPAN)
        assert again["expert_plan"] == info["expert_plan"]
    finally:
        backend.cache_root, backend._gold_memo = saved
