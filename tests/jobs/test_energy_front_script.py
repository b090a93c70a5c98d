"""jobs/energy_front.sh, run with a stand-in `qkf`: the data set is made once, one sweep per energy
model with that model's budgets, and the reference runs (unconstrained, ReLU twin) of the first
model's folder are linked into the others, not trained again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from stand_in import flag, run_with_stand_in  # tests/ (on sys.path: tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "energy_front.sh"
FAKE_QKF = """#!/bin/bash
echo "$*" >> "$LOG"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = --out ] && out=${args[i+1]}; done
[ "$1 $2" = "data prepare" ] && mkdir -p "$out" && echo {} > "$out/index.json"
exit 0
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(tmp_path: Path, **env: str) -> list[list[str]]:
    return run_with_stand_in(SCRIPT, FAKE_QKF, tmp_path, **env)


@pytest.mark.parametrize("which", ["C", "D"])
def test_one_sweep_per_model_and_shared_references(tmp_path, which):
    calls = run_script(tmp_path, SET=which, SEEDS="0,1", EPOCHS="30")
    synth, prepare, *sweeps = calls
    assert synth[:2] == ["data", "synth"] and prepare[:2] == ["data", "prepare"]
    assert [flag(c, "--energy-model") for c in sweeps] == ["h45_fp32_paper", "platform_truenorth"]
    out = tmp_path / "out"
    for call in sweeps:
        assert (
            call[:2] == ["sweep", "energy"] and "--with-relu-twin" in call and flag(call, "--seeds") == "0,1"
        )
        assert flag(call, "--out") == str(out / flag(call, "--energy-model"))
        assert flag(call, "--data") == str(out / "cache")
    budgets = [flag(c, "--budgets") for c in sweeps]
    assert budgets == (["5.8uJ", "50uJ,40uJ"] if which == "C" else ["5uJ", "42uJ,36uJ,33uJ"])
    assert "optim.epochs=30" in sweeps[0]
    assert f"energy.start_epoch={4 if which == 'C' else 20}" in sweeps[0]
    if which == "D":
        assert "data.augment=false" in sweeps[0]
    for seed in (0, 1):
        for ref in ("unconstrained", "relu"):
            link = out / "platform_truenorth" / "runs" / f"s{seed}_{ref}"
            assert link.is_symlink() and os.readlink(link) == str(out / "h45_fp32_paper" / "runs" / link.name)
    # a rerun finds the cache and the links: only the sweeps run again (they skip what is finished)
    again = run_script(tmp_path, SET=which, SEEDS="0,1", EPOCHS="30")
    assert [c[:2] for c in again] == [["sweep", "energy"]] * 2


def test_points_budgets_warm_up_and_an_unknown_set(tmp_path):
    calls = run_script(tmp_path, SET="C", MODELS="platform_truenorth", POINTS="2 4", START="7",
                       BUDGETS_platform_truenorth="44uJ,31uJ")  # fmt: skip
    sweeps = [c for c in calls if c[0] == "sweep"]
    assert [flag(c, "--point") for c in sweeps] == ["2", "4"]
    assert all(flag(c, "--budgets") == "44uJ,31uJ" and "energy.start_epoch=7" in c for c in sweeps)
    assert all(flag(c, "--seeds") == "0,1,2" and "optim.epochs=16" in c for c in sweeps)  # the defaults
    bad = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "x")], env=os.environ | {"SET": "Z"},
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "SET=Z" in bad.stderr
