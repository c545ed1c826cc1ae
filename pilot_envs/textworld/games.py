"""TextWorld games as data: which generator and settings, the game of each split index, and the on-disk cache.

Games are made by TextWorld's own generators (``tw-make``'s challenges and its custom generator) and compiled by
the Inform 7 compiler that ships in the ``textworld`` wheel: no network. Generation runs in a helper process
started with ``PYTHONHASHSEED=0`` because TextWorld's generators iterate over sets of strings, so the same seed
gives a different game under a different hash seed; with a fixed one, a (generator, settings, seed) triple is
the same game on every machine (tested). The helper is started on the first missing game, serves every env of
the process, exits when its stdin closes (its parent died) and is closed at interpreter exit.

Cache layout: ``<cache_dir>/textworld/tw-<version>/tw-<challenge>-<key>.{z8,json,sha256}`` (Jericho only cleans
the output of games whose file name starts with ``tw-``). An entry is written in a private temporary directory
``.tmp-<pid>@<host>-*`` and moved into place with ``os.replace``: the ``.sha256`` (the SHA-256 of the other two)
first, the ``.json``, which TextWorld needs next to the ``.z8``, last, so concurrent processes never see a partial
game. Several processes may make the same entry at once: they write the same bytes, and the last ``os.replace``
wins.

Entries are verified before use, because Jericho exits the whole interpreter (``Fatal error: Story file read
error``, nothing to catch) on a damaged story file: a game whose files do not match its ``.sha256`` is made again.
Entries of older versions, which have no ``.sha256``, are checked with the Z-machine's own integrity check (the
story file's length and checksum in its header, what the ``verify`` opcode does) and a parseable ``.json``; they
get their ``.sha256`` when they pass and are made again when they do not. A process verifies a game once and
re-verifies it when its files change (size, mtime or inode). Before making a game, temporary directories left by
killed writers are removed: those of a dead process on this host, and any older than
:data:`STALE_TMP_SECONDS` (another host's, or of an older version that did not record its owner).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pilot_envs.core.backend import cache_dir, write_cache_file

__all__ = ["CHALLENGES", "DEFAULT_SPLIT_SIZES", "GameSpec", "make_settings", "game_seed", "ensure_game", "find_game",
           "remove_stale_tmp", "GenerationError", "NoQuestError"]

#: challenge -> default settings (``level`` for the two level-based challenges). ``split`` is added for cooking.
CHALLENGES: dict[str, dict[str, Any]] = {
    "coin_collector": {"level": 5},
    "treasure_hunter": {"level": 5},
    "cooking": {"recipe": 1, "take": 1, "go": 1, "open": True, "cook": False, "cut": False, "drop": False},
    "simple": {"rewards": "dense", "goal": "detailed"},
    "custom": {"nb_rooms": 5, "nb_objects": 10, "quest_length": 5, "quest_breadth": 1},
}
LEVELS = {"coin_collector": (1, 300), "treasure_hunter": (1, 30)}
DEFAULT_SPLIT_SIZES: dict[str, int] = {"train": 100, "valid": 20, "test": 20}
_CHOICES = {"go": (1, 6, 9, 12), "rewards": ("dense", "balanced", "sparse"), "goal": ("detailed", "brief", "none")}


class GenerationError(RuntimeError):
    """TextWorld could not generate or compile a game."""


class NoQuestError(GenerationError):
    """The generator found no quest of the asked length for this seed (TextWorld: "try a different seed")."""


MAX_ATTEMPTS = 20  # seeds tried for one split index before giving up
STALE_TMP_SECONDS = 30 * 60  # a temporary directory untouched this long belongs to a writer that died
_TMP_PREFIX = ".tmp-"


def make_settings(challenge: str, level: int | None, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated generator settings: the challenge's defaults, then ``settings``, then ``level``."""
    if challenge not in CHALLENGES:
        raise ValueError(f"unknown TextWorld challenge {challenge!r}; choose from {tuple(CHALLENGES)}")
    out = dict(CHALLENGES[challenge])
    extra = dict(settings or {})
    unknown = sorted(set(extra) - set(out))
    if unknown:
        raise ValueError(f"unknown {challenge} setting(s) {unknown}; valid: {sorted(out)}")
    out.update(extra)
    if level is not None:
        if challenge not in LEVELS:
            raise ValueError(f"level applies to {tuple(LEVELS)}; set {challenge}'s difficulty with settings=")
        out["level"] = level
    for key, value in out.items():
        default = CHALLENGES[challenge][key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError(f"{challenge} setting {key!r} is a bool, got {value!r}")
        elif isinstance(default, int) and (
            isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "take" else 1)
        ):
            raise ValueError(f"{challenge} setting {key!r} must be a positive int, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"{challenge} setting {key!r} must be one of {_CHOICES[key]}, got {value!r}")
    if challenge in LEVELS and not LEVELS[challenge][0] <= out["level"] <= LEVELS[challenge][1]:
        raise ValueError(f"{challenge} levels are {LEVELS[challenge][0]}..{LEVELS[challenge][1]}, got {out['level']}")
    if challenge == "coin_collector" and ((out["level"] - 1) // 100 + 1) * ((out["level"] - 1) % 100 + 1) > 100:
        raise ValueError(f"coin_collector level {out['level']} needs more than 100 rooms, which TextWorld 1.7 cannot compile")
    if challenge == "cooking" and out["take"] > out["recipe"]:
        raise ValueError("cooking: take (ingredients to fetch) must be <= recipe (ingredients in the recipe)")
    return out


def game_seed(split: str, index: int, attempt: int = 0) -> int:
    """The TextWorld seed of game ``index`` of ``split`` (the same for every challenge and setting). ``attempt``
    > 0 gives the fallbacks used when the generator finds no quest for a seed."""
    name = f"pilot-envs/textworld/{split}/{index}" + (f"/{attempt}" if attempt else "")
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") % (2**31 - 2) + 1


@dataclass(frozen=True)
class GameSpec:
    """One game: a generator, its settings, a seed, and the dataset split it is drawn for."""

    challenge: str
    settings: tuple[tuple[str, Any], ...]
    seed: int
    split: str = "train"

    def generator_settings(self) -> dict[str, Any]:
        """Settings as the TextWorld generator takes them (the split mapped to its own train/valid/test notion)."""
        out = dict(self.settings)
        if self.challenge == "cooking":
            out.update(split=self.split if self.split in ("train", "valid", "test") else "train", recipe_seed=self.seed)
        if self.challenge == "simple":
            out["test"] = self.split == "test"
        return out

    @property
    def key(self) -> str:
        import textworld

        blob = json.dumps([textworld.__version__, self.challenge, self.generator_settings(), self.seed], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:20]


def ensure_game(spec: GameSpec, root: str | os.PathLike | None = None) -> Path:
    """The compiled ``.z8`` of ``spec``, verified, and generated (once per cache) if missing or damaged. Raises
    :class:`NoQuestError` (remembered in the cache as a ``.noquest`` entry) when the generator has no quest for
    this seed."""
    import textworld

    folder = cache_dir("textworld", f"tw-{textworld.__version__}", root=root)
    stem = f"tw-{spec.challenge}-{spec.key}"  # Jericho recognises TextWorld games by the "tw-" prefix
    z8, js, digest = folder / f"{stem}.z8", folder / f"{stem}.json", folder / f"{stem}.sha256"
    noquest = folder / f"{stem}.noquest"
    if z8.exists() and js.exists():
        if _verified(z8, js, digest):
            return z8
    elif noquest.exists():
        raise NoQuestError(f"TextWorld has no {spec.challenge} quest for seed {spec.seed} ({noquest})")
    remove_stale_tmp(folder)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f"{_TMP_PREFIX}{os.getpid()}@{_host()}-"))
    try:
        try:
            _build(spec, tmp / "game.z8")
        except NoQuestError:
            (tmp / "noquest").write_text(str(spec))
            os.replace(tmp / "noquest", noquest)
            raise
        if not _story_file_ok((tmp / "game.z8").read_bytes()) or not _json_ok(tmp / "game.json"):
            raise GenerationError(f"TextWorld wrote a damaged game for {spec} (is the disk full?)")
        (tmp / "game.sha256").write_text(_checksums(tmp / "game.z8", tmp / "game.json"))
        os.replace(tmp / "game.sha256", digest)  # first: whoever sees the game sees its checksum
        os.replace(tmp / "game.z8", z8)
        os.replace(tmp / "game.json", js)  # last: a .z8 without its .json is not a game yet
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        _VERIFIED[z8] = _signature(z8, js, digest)
    return z8


# ---------------------------------------------------------------------------------------------- verification
_VERIFIED: dict[Path, tuple[tuple[int, int, int], ...]] = {}  # .z8 -> file signatures when this process verified it
#: the Z-machine header's file length is in units of 2, 4 or 8 bytes depending on the story file's version
_LENGTH_UNIT = {1: 2, 2: 2, 3: 2, 4: 4, 5: 4, 6: 8, 7: 8, 8: 8}


def _signature(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        st = path.stat()
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _verified(z8: Path, js: Path, digest: Path) -> bool:
    """Whether the cached game (``z8`` + ``js``) is intact: it matches its ``.sha256``, or, for an entry written
    before checksums were (no ``.sha256``), passes the Z-machine's integrity check and then gets its ``.sha256``."""
    try:
        signature = _signature(z8, js, digest) if digest.exists() else _signature(z8, js)
        if _VERIFIED.get(z8) == signature:
            return True
        if digest.exists():
            ok = digest.read_text() == _checksums(z8, js)
        else:  # an entry of an older pilot-envs: verify what the files say about themselves, then record it
            ok = _story_file_ok(z8.read_bytes()) and _json_ok(js)
            if ok:
                write_cache_file(digest, _checksums(z8, js))
                signature = _signature(z8, js, digest) if digest.exists() else signature
    except OSError:  # a file vanished under us (another process is replacing the entry): make it ourselves
        return False
    if ok:
        _VERIFIED[z8] = signature
    return ok


def _checksums(z8: Path, js: Path) -> str:
    """The ``.sha256`` of a cache entry: a JSON object of each file's SHA-256."""
    sums = {path.suffix[1:]: hashlib.sha256(path.read_bytes()).hexdigest() for path in (z8, js)}
    return json.dumps(sums, sort_keys=True) + "\n"


def _story_file_ok(data: bytes) -> bool:
    """The Z-machine's own integrity check (the ``verify`` opcode): the story file is at least as long as its header
    says, and its bytes from 0x40 to that length sum (mod 2**16) to the header's checksum."""
    if len(data) < 64 or data[0] not in _LENGTH_UNIT:
        return False
    length = int.from_bytes(data[0x1A:0x1C], "big") * _LENGTH_UNIT[data[0]]
    if not 64 <= length <= len(data):
        return False
    total = int(np.frombuffer(data, dtype=np.uint8, count=length - 0x40, offset=0x40).sum(dtype=np.uint64))
    return total & 0xFFFF == int.from_bytes(data[0x1C:0x1E], "big")


def _json_ok(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_bytes()), dict)
    except (OSError, ValueError):
        return False


def _host() -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def remove_stale_tmp(folder: Path) -> list[Path]:
    """Remove the temporary directories of writers that died in ``folder`` (see the module docstring); returns them.
    A directory ``.tmp-<pid>@<host>-*`` of this host is stale when its process is gone; any ``.tmp-*`` is stale
    when untouched for :data:`STALE_TMP_SECONDS`."""
    removed = []
    now, host = time.time(), _host()
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(_TMP_PREFIX)]
    except OSError:
        return removed
    for path in entries:
        owner, _, rest = path.name[len(_TMP_PREFIX) :].partition("@")
        dead = owner.isdigit() and rest.rpartition("-")[0] == host and not _pid_alive(int(owner))
        try:
            old = now - path.stat().st_mtime > STALE_TMP_SECONDS
        except OSError:
            continue
        if (dead or old) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def find_game(challenge: str, settings: Mapping[str, Any], split: str, index: int,
              root: str | os.PathLike | None = None) -> tuple[GameSpec, Path]:
    """Game ``index`` of ``split``: the first of its seeds (:func:`game_seed` attempts) that has a quest."""
    items = tuple(sorted(settings.items()))
    for attempt in range(MAX_ATTEMPTS):
        spec = GameSpec(challenge, items, game_seed(split, index, attempt), split)
        try:
            return spec, ensure_game(spec, root)
        except NoQuestError:
            continue
    raise GenerationError(f"TextWorld found no {challenge} quest with settings {dict(items)} in {MAX_ATTEMPTS} seeds")


class _Generator:
    """The helper process that runs TextWorld's generators with a fixed hash seed (see the module docstring)."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        here = str(Path(__file__).resolve().parents[2])  # so that the helper imports this very pilot_envs
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pilot_envs.textworld.generate", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path},
            text=True,
        )

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def build(self, spec: GameSpec, out: Path) -> None:
        request = {"challenge": spec.challenge, "settings": spec.generator_settings(), "seed": spec.seed, "out": str(out)}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            raise GenerationError(f"the TextWorld generator process exited ({exc})") from exc
        if not line:
            raise GenerationError(f"the TextWorld generator process exited (code {self.proc.poll()})")
        reply = json.loads(line)
        if not reply.get("ok"):
            kind = NoQuestError if reply.get("kind") == "QuestGenerationError" else GenerationError
            raise kind(f"TextWorld could not make {spec}:\n{reply.get('error')}")

    def close(self) -> None:
        if self.owner != os.getpid():
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


_LOCK = threading.Lock()
_GENERATOR: _Generator | None = None


def _build(spec: GameSpec, out: Path) -> None:
    """Generate ``spec`` into ``out`` with this process's helper (started, or restarted once, as needed)."""
    global _GENERATOR
    with _LOCK:
        for attempt in (0, 1):
            if _GENERATOR is None or not _GENERATOR.usable():
                _GENERATOR = _Generator()
            try:
                _GENERATOR.build(spec, out)
                return
            except GenerationError:
                if attempt or _GENERATOR.usable():  # the generator's own error, or the helper died twice
                    raise


def close_generator() -> None:
    """Stop this process's generator helper (registered with ``atexit``)."""
    global _GENERATOR
    with _LOCK:
        if _GENERATOR is not None:
            _GENERATOR.close()
            _GENERATOR = None


def generator_pid() -> int | None:
    """The pid of this process's generator helper, if one is running."""
    return _GENERATOR.proc.pid if _GENERATOR is not None and _GENERATOR.usable() else None


atexit.register(close_generator)
