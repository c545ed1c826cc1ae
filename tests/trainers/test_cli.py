"""``python -m trainers <method>``: every registered method's CLI renders its help and config table."""

from __future__ import annotations

import dataclasses

import pytest

from trainers.core.cli import config_from_args, config_table, main
from trainers.core.registry import METHODS


@pytest.mark.parametrize("method", METHODS.names())
def test_help_lists_every_config_field(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse exits 0 after printing the help
        main([method, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    config_cls = METHODS.get(method).config
    for f in dataclasses.fields(config_cls):
        assert "--" + f.name.replace("_", "-") in out, f.name


@pytest.mark.parametrize("method", METHODS.names())
def test_config_table_and_print_config(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([method, "--config-table"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| field |") and "`lr`" in table
    with pytest.raises(SystemExit) as exc:
        main([method, "--print-config", "--lr", "0.5"])
    assert exc.value.code == 0
    assert '"lr": 0.5' in capsys.readouterr().out


def test_docs_config_tables_are_current() -> None:
    """docs/trainers/*.md show the config dataclasses as they are (``python -m trainers.docs`` regenerates)."""
    from pathlib import Path

    from trainers.docs import update_pages

    root = Path(__file__).resolve().parents[2] / "docs" / "trainers"
    assert update_pages(root, check=True) == [], "run `python -m trainers.docs`"


def test_config_table_with_a_base_lists_only_what_changes() -> None:
    from trainers.core.config import TrainerConfig
    from trainers.pilotrl import PilotRLConfig

    full, own = config_table(PilotRLConfig), config_table(PilotRLConfig, TrainerConfig)
    assert "`stage2_iterations`" in own and "`kl_coef`" in own  # added; default changed
    assert "`lr`" in full and "`lr`" not in own  # inherited unchanged


def test_every_registered_method_has_a_page_and_the_help_lists_it(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """Discovery: a method package registers itself; the CLI's usage and the docs find it without a central list."""
    from pathlib import Path

    from trainers.docs import update_pages

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    root = Path(__file__).resolve().parents[2] / "docs" / "trainers"
    for name in METHODS.names():
        assert name in usage
        assert (root / METHODS.get(name).page).exists(), name
    with pytest.raises(FileNotFoundError, match="has no page"):
        update_pages(tmp_path, check=True)  # an empty docs folder: every method's page is missing


def test_tuple_fields_take_typed_values_from_the_command_line() -> None:
    from trainers.grpo import GRPOConfig

    config = config_from_args(GRPOConfig, ["--model", "tiny", "--tree-turns", "2", "5", "8", "--stop-strings", "a", "b"])
    assert config.tree_turns == (2, 5, 8) and config.stop_strings == ("a", "b")


@pytest.mark.parametrize("method", METHODS.names())
def test_an_invalid_value_is_a_usage_error_not_a_traceback(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # the config's own validation, reported the way argparse reports
        main([method, "--lr", "-1", "--print-config"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: lr and sft_lr must be > 0" in err and "Traceback" not in err


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", None])
def test_a_bad_config_file_is_a_usage_error(content: str | None, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["grpo", "--config", str(path), "--print-config"])
    assert exc.value.code == 2
    assert f"error: --config {path}" in capsys.readouterr().err
