"""One ScienceWorld JVM per env, and the process hygiene around it.

Guarantees (tested by counting processes in ``tests/scienceworld/test_scienceworld_env.py``):

* the JVM starts lazily (on the first ``reset``), so ``gym.make`` and pickling never start Java;
* ``close()`` shuts it down and waits for the process to exit (killing it after a grace period);
* every JVM still open at interpreter exit is closed by an ``atexit`` hook;
* a process killed outright (``SIGKILL``, e.g. an async vector env worker) takes its JVM with it: the JVM is
  launched with py4j's ``--die-on-broken-pipe`` and exits when its stdin pipe closes;
* a forked child never touches its parent's JVM (it starts its own when it needs one);
* a JVM that dies during an episode (in a call, or between two steps) raises :class:`EngineDied` with the pid and
  exit code on the next step, and the next ``reset`` starts a new JVM (an env that never had a JVM in this
  process, e.g. one just unpickled, starts one and replays its episode instead);
* Ctrl-C (``SIGINT``) during a call into the JVM raises ``KeyboardInterrupt`` (py4j 0.10.9's gateway client
  turns it into an ``AttributeError`` and logs an error with a traceback: both are undone here); the JVM, which
  may still be running the interrupted command, is killed, and the env's next step replays its episode in a new
  JVM, without the interrupted command.

Every JVM gets ``-Dpilot_envs.parent=<pid>``, which names the Python process that owns it, and
``-Dpilot_envs.session=<$PILOT_ENVS_SESSION>`` when that variable is set (a supervisor, e.g. a test session, can
find its own JVMs with :func:`jvm_processes`), plus :data:`DETERMINISTIC_OPTIONS` when asked for determinism. On Java 13+ it
also uses a class-data-sharing archive of ScienceWorld's ~1,900 classes, written by the first JVM at its exit into
the cache directory (``scienceworld/cds/``): later JVMs start with about 40% less CPU.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gymnasium.error import DependencyNotInstalled

from pilot_envs.core.backend import cache_dir

__all__ = [
    "Engine",
    "EngineDied",
    "DETERMINISTIC_OPTIONS",
    "JVM_MARKER",
    "SESSION_ENV_VAR",
    "require_engine",
    "java_executable",
    "jvm_processes",
    "close_all",
]

#: ScienceWorld lists objects in hash-set order, and HotSpot's identity hash codes come from a random generator
#: whose state carries over from one load to the next, so the same variation is worded differently (object order,
#: valid actions, which object gets which name) depending on what the JVM did before. A constant identity hash
#: makes iteration follow insertion order: every load of a variation, in any JVM, then gives the same text and
#: actions. It costs about 25% more engine CPU per step (hash sets degrade to lists), hence opt-in.
DETERMINISTIC_OPTIONS: tuple[str, ...] = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")
JVM_MARKER = "-Dpilot_envs.parent="
SESSION_MARKER = "-Dpilot_envs.session="
SESSION_ENV_VAR = "PILOT_ENVS_SESSION"
INSTALL_JAVA = "apt-get install default-jre-headless"

_LAUNCH_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[Engine] = weakref.WeakSet()
_INHERITED: list[Any] = []  # engines a forked child inherited: kept alive so their finalisers never run there


class EngineDied(RuntimeError):
    """The ScienceWorld JVM exited during an episode. The episode is lost; ``reset()`` starts a new JVM."""


def java_executable() -> str | None:
    """The ``java`` py4j will run (``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        path = os.path.join(home, "bin", "java")
        return path if os.access(path, os.X_OK) else None
    return shutil.which("java")


def require_engine() -> None:
    """Raise a clear :class:`DependencyNotInstalled` when the scienceworld package or Java is missing."""
    import importlib.util

    if importlib.util.find_spec("scienceworld") is None:
        raise DependencyNotInstalled(
            "PilotScienceWorld needs the scienceworld package: pip install 'pilot-envs[scienceworld]'"
        )
    if java_executable() is None:
        where = f"$JAVA_HOME/bin/java (JAVA_HOME={os.environ['JAVA_HOME']})" if os.environ.get("JAVA_HOME") else "PATH"
        raise DependencyNotInstalled(
            f"ScienceWorld's engine runs on Java, and no java executable was found on {where}. "
            f"Install a Java runtime (8 or newer), e.g. `{INSTALL_JAVA}`, or set JAVA_HOME."
        )


class Engine:
    """A running ScienceWorld JVM (a ``scienceworld.ScienceWorldEnv``) owned by this process."""

    def __init__(
        self, java_options: Sequence[str] = (), cache_root: str | os.PathLike | None = None, deterministic: bool = False
    ):
        self.owner = os.getpid()
        options = [*(DETERMINISTIC_OPTIONS if deterministic else ()), f"{JVM_MARKER}{self.owner}"]
        if os.environ.get(SESSION_ENV_VAR):
            options.append(f"{SESSION_MARKER}{os.environ[SESSION_ENV_VAR]}")
        self._new_archive: tuple[Path, Path] | None = None
        if (_java_major(java_executable() or "") or 0) >= 13:
            options.append("-Xlog:disable")  # JVM warnings go to stdout, where py4j reads the port number
            archive = _archive_path(cache_root)
            if archive is not None and archive.exists():
                options.append(f"-XX:SharedArchiveFile={archive}")
            elif archive is not None:
                tmp = archive.with_name(f".{archive.name}.{self.owner}.{id(self)}.tmp")
                options.append(f"-XX:ArchiveClassesAtExit={tmp}")
                self._new_archive = (tmp, archive)
        options += java_options
        _quiet_py4j_interrupt_log()
        self.sw, self.proc = _launch(options)
        self.server = self.sw.server
        # one round trip for a whole list (py4j fetches a Java list element by element otherwise)
        self._join = self.sw._gateway.jvm.java.lang.String.join
        self.closed = False
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def usable(self) -> bool:
        """Owned by this process, not closed, and the JVM is running."""
        return not self.closed and self.owner == os.getpid() and self.proc.poll() is None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call into the JVM; a dead JVM becomes :class:`EngineDied` with its pid and exit code, and an interrupted
        call (Ctrl-C) a ``KeyboardInterrupt`` after the JVM, whose state is then unknown, is killed."""
        from py4j.protocol import Py4JError

        try:
            return fn(*args)
        except Py4JError as exc:
            code = self._exit_code()
            if code is None:
                raise
            raise self._died(code) from exc
        except KeyboardInterrupt:
            self.abandon()
            raise
        except AttributeError as exc:
            # py4j 0.10.9's GatewayClient.send_command answers a KeyboardInterrupt by calling
            # GatewayConnection.shutdown_socket, which does not exist: the interrupt comes out as this AttributeError
            if not isinstance(exc.__context__, KeyboardInterrupt):
                raise
            self.abandon()
            raise exc.__context__ from None

    def check_alive(self) -> None:
        """Raise :class:`EngineDied` when the JVM exited on its own (killed, crashed) while this process held it;
        a no-op for an engine closed on purpose or inherited through fork."""
        if not self.closed and self.owner == os.getpid():
            code = self.proc.poll()
            if code is not None:
                raise self._died(code)

    def _died(self, code: int) -> EngineDied:
        self.close()
        return EngineDied(
            f"ScienceWorld's Java process (pid {self.pid}) exited with code {code} during the episode, so the "
            "episode cannot continue. Call reset() to start a new episode (and a new JVM)."
        )

    def abandon(self) -> None:
        """Kill the JVM now (after an interrupted call it may still be busy, in an unknown state) and close."""
        if not self.closed and self.owner == os.getpid():
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
        self.close()

    def strings(self, java_list: Any) -> list[str]:
        """A Java ``List<String>`` as a Python list, in one round trip."""
        text = self.call(self._join, "\n", java_list)
        return text.split("\n") if text else []

    def _exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Shut the JVM down and wait for it to exit (idempotent; a no-op in a forked child)."""
        if self.closed:
            return
        self.closed = True
        _LIVE.discard(self)
        if self.owner != os.getpid():  # inherited through fork: the JVM belongs to the parent
            _INHERITED.append(self.sw)
            return
        with contextlib.suppress(Exception):  # the gateway may already be gone; the process is handled below
            if self.proc.poll() is None:
                self.sw.close()
            else:  # a dead JVM: only close our sockets (talking to it makes py4j log connection errors, also later
                self.sw._gateway._gateway_client.is_connected = False  # from the finalisers of Java object proxies)
                self.sw._gateway.close()
        self.sw.close = _noop  # ScienceWorldEnv.__del__ calls close() again
        try:
            self.proc.wait(timeout=30.0 if self._new_archive else 5.0)  # writing the archive takes a second
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._new_archive is not None:
            tmp, archive = self._new_archive
            with contextlib.suppress(OSError):
                if self.proc.returncode == 0 and tmp.exists():
                    os.replace(tmp, archive)
                else:
                    tmp.unlink(missing_ok=True)
        if self.proc.stdin is not None:  # py4j's consumer thread owns stdout
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


def _noop() -> None:
    return None


_PY4J_INTERRUPT_LOG = "KeyboardInterrupt while sending command."


class _DropPy4JInterruptLog(logging.Filter):
    """py4j logs every KeyboardInterrupt during a call as an error with a traceback (``logging.exception`` on the
    root logger); :meth:`Engine.call` re-raises the interrupt itself, so that record is only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _PY4J_INTERRUPT_LOG


def _quiet_py4j_interrupt_log() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _DropPy4JInterruptLog) for f in root.filters):
        root.addFilter(_DropPy4JInterruptLog())


@functools.lru_cache(maxsize=8)
def _java_major(java: str) -> int | None:
    """The major version of a Java installation, from its ``release`` file (None when unknown)."""
    try:
        text = (Path(os.path.realpath(java)).parent.parent / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.MULTILINE)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _archive_path(cache_root: str | os.PathLike | None) -> Path | None:
    """Where the class-data-sharing archive for this Java + ScienceWorld + py4j lives (None: no usable cache)."""
    import py4j
    import scienceworld
    from scienceworld.constants import JAR_PATH

    java = os.path.realpath(java_executable() or "java")
    try:
        release = (Path(java).parent.parent / "release").read_text()
    except OSError:
        release = ""
    key = hashlib.sha1(repr((java, release, scienceworld.__version__, JAR_PATH, py4j.__version__)).encode())
    try:
        folder = cache_dir("scienceworld", "cds", root=cache_root)
    except OSError:  # a read-only cache: start without the archive
        return None
    return folder / f"scienceworld-{key.hexdigest()[:16]}.jsa"


def _launch(options: list[str]) -> tuple[Any, subprocess.Popen]:
    """Start ``ScienceWorldEnv`` with extra JVM options (its constructor takes none, so py4j's
    ``launch_gateway`` is wrapped for the duration of the call)."""
    import scienceworld.scienceworld as sw_module

    original = sw_module.launch_gateway
    procs: list[subprocess.Popen] = []

    def launch(*args: Any, **kwargs: Any) -> Any:
        kwargs["javaopts"] = [*kwargs.get("javaopts", ()), *options]
        kwargs["die_on_exit"] = True
        kwargs["return_proc"] = True
        port, proc = original(*args, **kwargs)
        procs.append(proc)
        return port, proc

    with _LAUNCH_LOCK:
        sw_module.launch_gateway = launch
        try:
            sw = sw_module.ScienceWorldEnv("", envStepLimit=2**31 - 1)
        except BaseException:
            for proc in procs:  # never leave a half-started JVM behind
                proc.kill()
                proc.wait()
            raise
        finally:
            sw_module.launch_gateway = original
    return sw, procs[0]


def close_all() -> None:
    """Close every JVM this process started and has not closed (registered with ``atexit``)."""
    for engine in list(_LIVE):
        if engine.owner == os.getpid():
            engine.close()


def _after_fork_in_child() -> None:
    for engine in list(_LIVE):
        engine.close()  # only marks it closed and keeps it referenced: the JVM is the parent's


atexit.register(close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)


def jvm_processes() -> dict[int, tuple[int | None, str | None]]:
    """Running ScienceWorld JVMs on this machine (Linux ``/proc``): pid -> (pid of the Python process that started
    it, its ``$PILOT_ENVS_SESSION``), from the JVM's command line (None for what it does not carry)."""
    out: dict[int, tuple[int | None, str | None]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not any("scienceworld.jar" in a for a in args):
            continue
        parent = next((a[len(JVM_MARKER) :] for a in args if a.startswith(JVM_MARKER)), "")
        session = next((a[len(SESSION_MARKER) :] for a in args if a.startswith(SESSION_MARKER)), None)
        out[int(entry)] = (int(parent) if parent.isdigit() else None, session)
    return out
