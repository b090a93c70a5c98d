"""Running a jobs/ script with a stand-in `qkf` that logs its arguments: which commands the script
starts, with which flags (shared by the tests of jobs/*.sh)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_with_stand_in(script: Path, fake_qkf: str, tmp_path: Path, **env: str) -> list[list[str]]:
    """Run ``script OUT`` with ``$QKF`` = ``fake_qkf`` (a bash script appending "$*" to ``$LOG``);
    the calls it logged, each split into words."""
    qkf = tmp_path / "qkf"
    qkf.write_text(fake_qkf)
    qkf.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    environ = os.environ | {"QKF": str(qkf), "LOG": str(log)} | env
    subprocess.run(["bash", str(script), str(tmp_path / "out")], env=environ, check=True, cwd=ROOT)
    return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


def flag(call: list[str], name: str) -> str:
    """The value after ``name`` in one logged call."""
    return call[call.index(name) + 1]
