"""Checkpoints that resume a run exactly: weights, optimizers, RNG states and trainer state.

Layout of ``<run>/checkpoints/step-000010/``::

    <name>.safetensors      one per module (``safetensors.torch.save_model``: tied weights handled)
    optimizers.pt           every optimizer's ``state_dict`` (and LR schedulers')
    rng.pt                  torch CPU (+ CUDA) RNG, numpy generators, named torch generators
    trainer_state.json      step, config, and whatever JSON-safe state the trainer adds

A checkpoint is written into a temporary sibling directory and renamed into place (``os.replace``), so a
crash never leaves a half-written checkpoint under a final name; :func:`latest_checkpoint` ignores
anything else. Only the main process should call :func:`save_checkpoint`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

__all__ = ["latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

_NAME = re.compile(r"^step-(\d+)$")


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
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp / "optimizers.pt")
        torch.save(dict(rng), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **state}, indent=1, default=str))
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
    """The complete checkpoint with the highest step under ``root`` (None if there is none)."""
    found = [p for p in _checkpoints(Path(root)) if (p / "trainer_state.json").exists()]
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, Any],
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights and optimizer states in place; returns ``(trainer_state, rng_state)`` (the caller
    restores RNGs with :func:`set_rng_state` once everything else is built)."""
    path = Path(path)
    for name, module in modules.items():
        missing, unexpected = load_model(module, str(path / f"{name}.safetensors"), strict=False, device=str(map_location))
        if unexpected or any(not _tied(module, k) for k in missing):
            raise RuntimeError(f"checkpoint {path.name}/{name}: missing {missing}, unexpected {unexpected}")
    opt_states = torch.load(path / "optimizers.pt", map_location=map_location, weights_only=False)
    for name, opt in optimizers.items():
        opt.load_state_dict(opt_states[name])
    rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=False)
    state = json.loads((path / "trainer_state.json").read_text())
    return state, rng


def _tied(module: torch.nn.Module, key: str) -> bool:
    """``key`` is a parameter that shares storage with another (saved once by ``save_model``)."""
    tensors = dict(module.state_dict())
    t = tensors.get(key)
    return t is not None and any(k != key and v.data_ptr() == t.data_ptr() for k, v in tensors.items())
