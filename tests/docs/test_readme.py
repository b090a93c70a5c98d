"""The README stays true: its Python examples run, and every `qkf ...` command line it shows names
an existing command whose help lists each option the line uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkf_snn.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def qkf_lines() -> list[str]:
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("qkf "):
                lines.append(line)
            elif "qkf_snn.cli.main" in line:  # torchrun ... -m qkf_snn.cli.main train ...
                lines.append("qkf " + line.split("qkf_snn.cli.main", 1)[1].strip())
    return lines


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_examples_run(index):
    exec(compile(blocks("python")[index], f"README.md python block {index}", "exec"), {})


def test_readme_shows_commands():
    assert len(qkf_lines()) >= 10


@pytest.mark.parametrize("line", qkf_lines())
def test_command_lines_exist(line):
    words = shlex.split(line)[1:]
    path = []
    for word in words:  # the command path: leading words up to the first argument that is not a group
        result = CliRunner().invoke(app, [*path, word, "--help"], terminal_width=200)
        if result.exit_code != 0 or word.startswith("-"):
            break
        path.append(word)
        if "Commands" not in result.output:  # a leaf command: the rest are its arguments
            break
    assert path, f"{line}: `qkf {words[0]}` is not a command"
    help_text = CliRunner().invoke(app, [*path, "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert help_text.exit_code == 0, f"{line}: {help_text.output}"
    for option in (w.split("=")[0] for w in words if w.startswith("--")):
        assert option in help_text.output, f"{line}: `qkf {' '.join(path)}` has no option {option}"
