"""Checkpoints that resume a run exactly (weights, optimizers, RNG states, trainer state) and never run code.

Layout of ``<run>/checkpoints/step-000010/``::

    <name>.safetensors                          one per module (``safetensors.torch.save_model``: tied weights handled)
    optimizers.json + optimizers.safetensors    every optimizer's ``state_dict`` (:mod:`trainers.core.safestate`)
    rng.json + rng.safetensors                  torch CPU (+ CUDA) RNG, named torch generators, numpy generators
    trainer_state.json                          step, config, and whatever JSON-safe state the trainer adds
    manifest.json                               written last: the size and SHA-256 of every other file

Nothing is pickled, so loading a checkpoint cannot execute code; a checkpoint of the older pickle format
(``optimizers.pt``, ``rng.pt``) is refused, never unpickled. A checkpoint is written into a temporary sibling
directory and renamed into place (``os.replace``), so a crash never leaves a half-written checkpoint under a
final name. On resume :func:`find_checkpoint` verifies checkpoints against their manifests, newest first, skips
a damaged one with a :class:`CheckpointWarning` (falling back to the previous complete one), and raises
:class:`CheckpointError` naming every file and what is wrong with it when none is usable. Only the main process
should call :func:`save_checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from trainers.core.safestate import StateFormatError, load_state, save_state

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "find_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "read_trainer_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "verify_checkpoint",
]

_NAME = re.compile(r"^step-(\d+)$")
MANIFEST = "manifest.json"
STATE = "trainer_state.json"
PICKLED = ("optimizers.pt", "rng.pt")  # the older format, refused


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that cannot be loaded into this trainer."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped in favour of an older one."""


def rng_state(generators: Mapping[str, torch.Generator], np_generators: Mapping[str, np.random.Generator]) -> dict:
    """Global torch RNG (CPU and CUDA), the named torch generators and numpy generators."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {k: g.get_state() for k, g in generators.items()},
        "numpy": {k: g.bit_generator.state for k, g in np_generators.items()},
    }


def set_rng_state(
    state: Mapping[str, Any], generators: Mapping[str, torch.Generator], np_generators: Mapping[str, np.random.Generator]
) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])
    for k, g in np_generators.items():
        g.bit_generator.state = state["numpy"][k]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, Any],
    rng: Mapping[str, Any],
    state: Mapping[str, Any],
    keep: int | None = None,
) -> Path:
    """Write checkpoint ``root/step-<step>`` atomically; keep only the newest ``keep`` (None: all)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        for name, module in modules.items():
            save_model(module, str(tmp / f"{name}.safetensors"))
        save_state({k: o.state_dict() for k, o in optimizers.items()}, tmp / "optimizers.json",
                   tmp / "optimizers.safetensors")
        save_state(dict(rng), tmp / "rng.json", tmp / "rng.safetensors")
        (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1, default=str))
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"format": 1, "step": step, "files": files}, indent=1))
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=root))
            os.replace(final, old / "x")
            shutil.rmtree(old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep is not None:
        for old in _checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoints(root: Path) -> list[Path]:
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)] if root.exists() else []
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint (manifest written) with the highest step under ``root`` (None if there is none).
    Completeness only: :func:`find_checkpoint` also verifies the files."""
    found = [p for p in _checkpoints(Path(root)) if (p / MANIFEST).exists()]
    return found[-1] if found else None


def verify_checkpoint(path: str | Path) -> list[str]:
    """What is wrong with checkpoint ``path`` (each entry names a file); empty when every file matches its
    manifest."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        pickled = [n for n in PICKLED if (path / n).exists()]
        if pickled:
            return [f"{path / pickled[0]}: older pickle format (loading it could run code); not loaded - "
                    "start a fresh run, or resume from a checkpoint written by this version"]
        return [f"{path / MANIFEST}: missing (an incomplete checkpoint)"]
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path / MANIFEST}: unreadable ({exc})"]
    problems = []
    for name, meta in sorted(files.items()):
        p = path / name
        if "/" in name or name.startswith(".") or not isinstance(meta, dict):
            problems.append(f"{path / MANIFEST}: bad entry {name!r}")
        elif not p.is_file():
            problems.append(f"{p}: missing")
        elif p.stat().st_size != meta.get("bytes"):
            problems.append(f"{p}: {p.stat().st_size} bytes, the manifest says {meta.get('bytes')}")
        elif _sha256(p) != meta.get("sha256"):
            problems.append(f"{p}: content differs from the manifest (SHA-256 mismatch)")
    for needed in (STATE, "optimizers.json", "optimizers.safetensors", "rng.json", "rng.safetensors"):
        if needed not in files:
            problems.append(f"{path / needed}: not in the manifest")
    return problems


def find_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint under ``root`` whose files all match its manifest. Newer damaged or incomplete
    ones are skipped with a :class:`CheckpointWarning`; None when there are no checkpoints at all;
    :class:`CheckpointError` listing every problem when there are some but none is usable."""
    problems: list[str] = []
    for path in reversed(_checkpoints(Path(root))):
        found = verify_checkpoint(path)
        if not found:
            if problems:
                warnings.warn(f"skipped damaged checkpoint(s), resuming from {path}:\n  " + "\n  ".join(problems),
                              CheckpointWarning, stacklevel=2)
            return path
        problems += found
    if problems:
        raise CheckpointError("no usable checkpoint in " + str(root) + ":\n  " + "\n  ".join(problems))
    return None


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    """``trainer_state.json`` of checkpoint ``path`` (step, config, trainer state)."""
    file = Path(path) / STATE
    try:
        state = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: unreadable ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{file}: not a trainer state (no integer 'step')")
    return state


def load_checkpoint(
    path: str | Path,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, Any],
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights and optimizer states in place; returns ``(trainer_state, rng_state)`` (the caller
    restores RNGs with :func:`set_rng_state` once everything else is built). Verify ``path`` first
    (:func:`find_checkpoint`); errors name the file."""
    path = Path(path)
    for name, module in modules.items():
        file = path / f"{name}.safetensors"
        try:
            missing, unexpected = load_model(module, str(file), strict=False, device=str(map_location))
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"{file}: cannot be loaded into the {name!r} module ({exc})") from exc
        if unexpected or any(not _tied(module, k) for k in missing):
            raise CheckpointError(f"{file}: missing {missing}, unexpected {unexpected}")
    try:
        opt_states = load_state(path / "optimizers.json", path / "optimizers.safetensors")
        rng = load_state(path / "rng.json", path / "rng.safetensors")
    except StateFormatError as exc:
        raise CheckpointError(str(exc)) from exc
    for name, opt in optimizers.items():
        if name not in opt_states:
            raise CheckpointError(f"{path / 'optimizers.json'}: no state for optimizer {name!r}")
        try:
            opt.load_state_dict(opt_states[name])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{path / 'optimizers.json'}: optimizer {name!r} does not match ({exc})") from exc
    return read_trainer_state(path), rng


def _tied(module: torch.nn.Module, key: str) -> bool:
    """``key`` is a parameter that shares storage with another (saved once by ``save_model``)."""
    tensors = dict(module.state_dict())
    t = tensors.get(key)
    return t is not None and any(k != key and v.data_ptr() == t.data_ptr() for k, v in tensors.items())
