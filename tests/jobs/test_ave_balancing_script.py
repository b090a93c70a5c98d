"""jobs/ave_balancing.sh, run with a stand-in `qkf`: which runs it starts, with which flags, and that
its "recipe" condition is the AVE recipe's balancing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from stand_in import flag, run_with_stand_in  # tests/ (on sys.path: tests/conftest.py)

from qkf_snn.training.config import compose

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "ave_balancing.sh"

# Logs its arguments; `data prepare` leaves a cache index, `train` a results.json, as the real one does.
FAKE_QKF = """#!/bin/bash
echo "$*" >> "$LOG"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in --out) out=${args[i+1]} ;; --name) name=${args[i+1]} ;; esac
done
case "$1 $2" in
    "data prepare") mkdir -p "$out" && echo {} > "$out/index.json" ;;
    train*) mkdir -p "$out/$name" && echo {} > "$out/$name/results.json" ;;
esac
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(tmp_path: Path, **env: str) -> list[list[str]]:
    return run_with_stand_in(SCRIPT, FAKE_QKF, tmp_path, PY="true", **env)


def test_set_d_runs_every_condition_and_seed_once(tmp_path):
    calls = run_script(tmp_path)
    synth, prepare, *trains = calls
    assert synth[:3] == ["data", "synth", "ave"] and "audio_missing=0.3" in synth
    assert prepare[:3] == ["data", "prepare", "ave"]
    names = [flag(c, "--name") for c in trains]
    conditions = ["audio", "video", "av_plain", "av_bal", "av_aux", "av_ogm", "av_bal_long", "av_bal_a01"]
    assert names == [f"{c}_s{s}" for s in range(3) for c in conditions]
    for call in trains:
        assert "--resume" in call and "--no-augment" in call and flag(call, "--epochs") == "80"
        assert flag(call, "--seed") == flag(call, "--name").rsplit("_s", 1)[1]
    # a second run finds every results.json and the cache: nothing is started again
    assert run_script(tmp_path) == []


def test_recipe_condition_is_the_ave_recipe_balancing(tmp_path):
    calls = run_script(tmp_path, CONDITIONS="av_bal av_plain", SEEDS="0")
    bal, plain = (c for c in calls if c[0] == "train")
    recipe = compose("ave", "av").balance
    assert "--ogm-ge" in bal and float(flag(bal, "--ogm-alpha")) == recipe.alpha
    assert int(flag(bal, "--ogm-end")) == recipe.end_epoch and recipe.start_epoch == 0
    assert float(flag(bal, "--aux-weight")) == recipe.aux_weight
    assert "--no-ogm-ge" in plain and float(flag(plain, "--aux-weight")) == 0


def test_set_a_and_an_unknown_set(tmp_path):
    calls = run_script(tmp_path, SET="A", CONDITIONS="audio", SEEDS="1")
    assert "--clips" in calls[0] and flag(calls[0], "--clips") == "1400"
    assert flag(calls[-1], "--epochs") == "40" and "--augment" in calls[-1]
    env = os.environ | {"SET": "Z"}
    bad = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "x")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: SET=Z: must be A or D"
