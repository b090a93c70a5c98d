"""jobs/energy_sweep.sbatch, run with a stand-in `qkf` and the SLURM variables an array task gets:
the script is valid bash, array task I runs point I of the sweep (checked against the real
`qkf sweep energy --list`), every task passes the same settings, and the summary step reports."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "energy_sweep.sbatch"
QKF = str(Path(sys.executable).with_name("qkf"))
FAKE_QKF = '#!/bin/bash\necho "$*" >> "$LOG"\n'

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_the_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def task(tmp_path: Path, index: str | None, *args: str, **env: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "qkf"
    fake.write_text(FAKE_QKF)
    fake.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    environ |= {
        "QKF": str(fake),
        "LOG": str(tmp_path / "calls.log"),
        "DATA": "/data/ave",
        "OUT": str(tmp_path / "sw"),
    }
    if index is not None:
        environ["SLURM_ARRAY_TASK_ID"] = index
    return subprocess.run(["bash", str(SCRIPT), "ave", "av", *args], env=environ | env, capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip


def test_array_task_runs_its_point(tmp_path):
    env = {"BUDGETS": "2uJ,4uJ", "SEEDS": "0,1", "RELU_TWIN": "1"}
    for index in ("0", "3", "7"):
        done = task(tmp_path, index, "--set", "optim.epochs=2", **env)
        assert done.returncode == 0, done.stderr
    calls = [shlex.split(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert [c[c.index("--point") + 1] for c in calls] == ["0", "3", "7"]
    # every task gets the same sweep: the arguments without --point are identical
    bare = [c[: c.index("--point")] + c[c.index("--point") + 2 :] for c in calls]
    assert bare[0] == bare[1] == bare[2]
    assert bare[0][:3] == ["sweep", "energy", "ave"] and "--with-relu-twin" in bare[0]
    assert bare[0][bare[0].index("--budgets") + 1] == "2uJ,4uJ" and bare[0][-2:] == [
        "--set",
        "optim.epochs=2",
    ]
    # the real sweep's point list, from the same arguments: task I is point I
    listing = subprocess.run([QKF, *bare[0], "--list"], capture_output=True, text=True, check=True,
                             env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
    names = [line.split("\t")[1] for line in listing.stdout.splitlines()]
    assert names == [
        f"s{s}_{p}" for s in (0, 1) for p in ("unconstrained", "relu", "budget_2uJ", "budget_4uJ")
    ]
    assert [names[int(c[c.index("--point") + 1])] for c in calls] == ["s0_unconstrained", "s0_budget_4uJ",
                                                                       "s1_budget_4uJ"]  # fmt: skip
    assert not (tmp_path / "sw").exists()  # --list writes nothing


def test_summary_step_and_a_task_outside_an_array(tmp_path):
    done = task(tmp_path, None, REPORT="1")
    assert done.returncode == 0
    assert shlex.split((tmp_path / "calls.log").read_text()) == ["sweep", "report", str(tmp_path / "sw")]
    outside = task(tmp_path, None, BUDGETS="2uJ")
    assert outside.returncode != 0 and "array task" in outside.stderr
