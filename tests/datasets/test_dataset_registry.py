"""Every registered dataset, automatically: the registry is the one list of names (config, CLI, recipes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkf_snn.cli.main import app
from qkf_snn.datasets import DATASETS, prepare
from qkf_snn.errors import UserError

NAMES = list(DATASETS)


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_root_names_the_expected_layout(name: str, tmp_path: Path) -> None:
    spec = DATASETS[name]
    assert spec.name == name and spec.layout and spec.splits and spec.clip_seconds > 0
    with pytest.raises(UserError) as err:
        prepare(name, tmp_path / "none", tmp_path / "out", progress=False)
    assert str(err.value) == f"--raw {tmp_path / 'none'}: no such directory (expected {spec.layout})"


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_root_is_one_line_naming_it(name: str, tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserError) as err:
        prepare(name, tmp_path / "raw", tmp_path / "out", progress=False)
    text = str(err.value)
    assert str(tmp_path / "raw") in text and "\n" not in text


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_split_lists_the_dataset_own(name: str, tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=f"unknown split for {name} \\(choose {', '.join(DATASETS[name].splits)}"
    ):
        DATASETS[name].assign([], "bogus", 0)


@pytest.mark.parametrize("command", [["data", "prepare"], ["data", "synth"], ["train"]])
def test_the_cli_help_lists_every_registered_dataset(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert ", ".join(NAMES) in " ".join(result.output.split())
