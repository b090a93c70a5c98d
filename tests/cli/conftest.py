"""Shared by the CLI tests: `qkf` in process (for cases a subprocess cannot stage, e.g. a stubbed
library function) and the installed console script in a subprocess (as users call it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

QKF = Path(sys.executable).with_name("qkf")  # the console script installed in this environment


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run_main(monkeypatch, capsys) -> Callable[..., Outcome]:
    """``run_main("train", ...)``: ``main()`` with that ``sys.argv``; exit status, stdout, stderr."""
    from qkf_snn.cli.main import main

    def run(*args: object) -> Outcome:
        monkeypatch.setattr(sys, "argv", ["qkf", *map(str, args)])
        with pytest.raises(SystemExit) as exit_:
            main()  # always exits: sys.exit(status) on success too
        captured = capsys.readouterr()
        return Outcome(exit_.value.code, captured.out, captured.err)

    return run


@pytest.fixture
def qkf() -> Callable[..., subprocess.CompletedProcess]:
    """``qkf("deploy", "check", ...)``: the installed console script in a subprocess (one OpenMP
    thread, a wide terminal so that no message wraps)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}

    def run(*args: object, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(QKF), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
        )

    return run
