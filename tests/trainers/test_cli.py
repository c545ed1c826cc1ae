"""``python -m trainers <method>``: every registered method's CLI renders its help and config table."""

from __future__ import annotations

import pytest

from trainers.core.cli import TRAINERS, _load, main


@pytest.mark.parametrize("method", sorted(TRAINERS))
def test_help_lists_every_config_field(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse exits 0 after printing the help
        main([method, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    config_cls = _load(TRAINERS[method][0])
    for name in config_cls.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in out, name


@pytest.mark.parametrize("method", sorted(TRAINERS))
def test_config_table_and_print_config(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([method, "--config-table"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| field |") and "`lr`" in table
    with pytest.raises(SystemExit) as exc:
        main([method, "--print-config", "--lr", "0.5"])
    assert exc.value.code == 0
    assert '"lr": 0.5' in capsys.readouterr().out
