"""Every usage error of every `qkf` command, through the installed console script in a subprocess:
an unknown option, each missing required argument or option, and a wrongly typed value give exit 2,
exactly one line on stderr that names the command and the culprit, and no traceback.

The cases are derived from the Typer app itself, so a new command or option is covered without
editing this file; the list of commands is cross-checked against what `qkf --help` shows.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer

from qkf_snn.cli import train as train_cli
from qkf_snn.cli.main import app

QKF = Path(sys.executable).parent / "qkf"  # the console script installed in this environment
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
BAD_VALUES: dict[Any, str] = {int: "abc", float: "1.5x", train_cli.Ints: "2,x"}  # one per typed kind


def qkf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QKF), *args], capture_output=True, text=True, env=ENV, timeout=120)


def _tree(cmd: Any, path: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """``({group path: [subcommand names]}, {command path: click command})`` of the whole app."""
    groups, leaves = {}, {}
    sub = getattr(cmd, "commands", None)
    if sub is None:
        return groups, {path: cmd}
    groups[path] = list(sub)
    for name, child in sub.items():
        g, c = _tree(child, (*path, name))
        groups.update(g)
        leaves.update(c)
    return groups, leaves


GROUPS, COMMANDS = _tree(typer.main.get_command(app))


def _dummy(param: Any) -> list[str]:
    """Command-line words that give ``param`` some syntactically valid value."""
    return ["x"] if param.param_type_name == "argument" else [param.opts[0], "x"]


def _required(cmd: Any, but: Any = None) -> list[str]:
    """Words for every required parameter of ``cmd`` except ``but``, arguments first in order."""
    params = [p for p in cmd.params if p.required and p is not but]
    args = [w for p in params if p.param_type_name == "argument" for w in _dummy(p)]
    return args + [w for p in params if p.param_type_name == "option" for w in _dummy(p)]


def _cases() -> list[Any]:
    cases = []
    for path, cmd in COMMANDS.items():
        name = " ".join(path)
        cases.append(pytest.param(path, [*_required(cmd), "--no-such-flag"], "no such option: --no-such-flag",
                                  id=f"{name}-unknown-option"))  # fmt: skip
        for p in (p for p in cmd.params if p.required):
            shown = p.opts[0] if p.param_type_name == "option" else p.name
            culprit = f"missing {p.param_type_name} '{shown}'"
            cases.append(pytest.param(path, _required(cmd, but=p), culprit, id=f"{name}-missing-{p.name}"))
        typed = {}
        for p in cmd.params:  # the first option of each typed kind
            kind = p.type_descriptor.annotation
            if p.param_type_name == "option" and kind in BAD_VALUES:
                typed.setdefault(kind, p)
        for kind, p in typed.items():
            words = [*_required(cmd), p.opts[0], BAD_VALUES[kind]]
            culprit = f"invalid value for '{p.opts[0]}'"
            cases.append(pytest.param(path, words, culprit, id=f"{name}-bad-{kind.__name__}-{p.name}"))
    return cases


def _assert_one_line(result: subprocess.CompletedProcess, path: tuple[str, ...], culprit: str) -> str:
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err)
    assert "Traceback" not in err and "Traceback" not in result.stdout, err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    prefix = f"error: {' '.join(path)}: " if path else "error: "
    assert err.startswith(prefix), err
    assert culprit.lower() in err.lower(), err
    return err


@pytest.fixture(scope="module")
def ran() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every command line of this module, run once, a few at a time (each start costs ~0.5 s CPU)."""
    lines = {(*c.values[0], *c.values[1]) for c in _cases()}
    lines |= {(*g, *extra) for g in GROUPS for extra in ((), ("no-such-command",), ("--help",))}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(lines, pool.map(lambda line: qkf(*line), lines), strict=True))


@pytest.mark.parametrize(("path", "words", "culprit"), _cases())
def test_usage_error_is_one_line_naming_the_culprit(ran, path, words, culprit):
    result = ran[(*path, *words)]
    _assert_one_line(result, path, culprit)
    assert result.stdout == ""


@pytest.mark.parametrize("path", list(GROUPS), ids=lambda p: " ".join(p) or "qkf")
def test_a_group_without_or_with_an_unknown_command(ran, path):
    bare = ran[path]  # its help on stdout (what no_args_is_help is for), then the error line
    err = _assert_one_line(bare, path, "missing command; choose one of: " + ", ".join(GROUPS[path]))
    assert "Usage: qkf" in bare.stdout and all(name in bare.stdout for name in GROUPS[path]), err
    unknown = ran[(*path, "no-such-command")]
    _assert_one_line(unknown, path, "no such command 'no-such-command'")
    assert unknown.stdout == ""


@pytest.mark.parametrize("path", list(GROUPS), ids=lambda p: " ".join(p) or "qkf")
def test_help_lists_exactly_the_commands_the_tests_cover(ran, path):
    result = ran[(*path, "--help")]
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # rows of the Commands panel: "│ name   description"; options start with "-"
    listed = re.findall(r"^│ (\w[\w-]*) ", result.stdout, flags=re.M)
    assert listed == GROUPS[path]


def test_the_derived_cases_cover_every_command_and_kind():
    assert {" ".join(p) for p in COMMANDS} >= {"train", "eval", "data prepare", "verify nir", "bench all"}
    ids = [c.id for c in _cases()]
    assert len(ids) == len(set(ids))
    assert "train-bad-Ints-dims" in ids and "train-bad-float-mlp_ratio" in ids
    assert "verify nir-missing-checkpoint" in ids and "data prepare-missing-dataset" in ids


def test_help_and_usage_errors_do_not_import_torch():
    """`qkf --help` and a usage error must stay fast: torch (seconds to import) only when a command runs."""
    code = "import sys; import qkf_snn.cli.main; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert result.stdout.strip() == "False", result.stdout + result.stderr
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert qkf("train", "crema", "--bogus").returncode == 2
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert cpu < 3.0, f"{cpu:.2f} s of CPU for a usage error"  # ~0.5 s; importing torch alone takes more


# --- the research code's multi-value options (`--num-heads 2 4 6`) ----------------------------------
@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        ("train crema --num-heads 2 4 6 --depths 2 4 8", "train crema --num-heads 2,4,6 --depths 2,4,8"),
        ("train --dims 8 16 16 crema --epochs 3", "train --dims 8,16,16 crema --epochs 3"),
        ("train crema --num-heads 2,4 6", "train crema --num-heads 2,4,6"),
        ("train crema --num-heads 2,4,6", "train crema --num-heads 2,4,6"),
        ("train crema --num-heads=2 4", "train crema --num-heads=2 4"),  # `=` form: one value, as argparse
        ("train crema --num-heads", "train crema --num-heads"),
        ("train crema -- --depths 1 2", "train crema -- --depths 1 2"),
        ("bench lif --depths 1 2", "bench lif --depths 1 2"),  # other commands untouched
    ],
)
def test_multi_value_options_join_the_integers_that_follow(argv, joined):
    assert train_cli.join_multi_values(argv.split()) == joined.split()


def test_the_multi_value_options_are_exactly_trains_integer_list_options():
    cmd = COMMANDS[("train",)]
    declared = {p.opts[0] for p in cmd.params if p.type_descriptor.annotation is train_cli.Ints}
    assert declared == train_cli.MULTI_VALUE_OPTIONS == {"--dims", "--depths", "--num-heads"}
