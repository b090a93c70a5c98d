"""benchmarks/quant_accuracy.py (docs/deployment.md's accuracy-vs-bits tables): its bad input is refused
in one line before anything trains, and its table's deltas and means are the rows' own arithmetic."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "quant_accuracy.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("quant_accuracy_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_bad_clips_and_a_resume_with_another_count_are_refused(tmp_path):
    few = _run("--clips", "59", "--out", str(tmp_path / "a"))
    assert few.returncode == 2 and few.stderr.strip().splitlines() == [
        "--clips: 59 is too few (at least 60: 10 val and 10 test clips)"
    ]
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    out.mkdir()
    (out / "bench.json").write_text(json.dumps({"clips": 600}))
    other = _run("--clips", "240", "--out", str(out))
    assert other.returncode == 2 and other.stderr.strip().splitlines() == [
        f"--out: {out} holds 600 clips, not 240 (use another --out)"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["bench.json"]


def test_table_deltas_are_per_seed_and_means_over_seeds():
    rows = [
        {"seed": 0, "setting": "float32", "bits": 32, "granularity": "-", "val": 70.0, "test": 61.25},
        {"seed": 0, "setting": "PTQ", "bits": 4, "granularity": "per-channel", "val": 65.0, "test": 57.5},
        {"seed": 1, "setting": "float32", "bits": 32, "granularity": "-", "val": 80.0, "test": 70.0},
        {"seed": 1, "setting": "PTQ", "bits": 4, "granularity": "per-channel", "val": 72.5, "test": 69.0},
    ]
    lines = _benchmark().format_table(rows).splitlines()
    assert lines[2:] == [
        "| 0 | float32 | 32 | - | 70.00 | 61.25 | +0.00 |",
        "| 0 | PTQ | 4 | per-channel | 65.00 | 57.50 | -3.75 |",
        "| 1 | float32 | 32 | - | 80.00 | 70.00 | +0.00 |",
        "| 1 | PTQ | 4 | per-channel | 72.50 | 69.00 | -1.00 |",
        "| mean of 2 | float32 | 32 | - | 75.00 | 65.62 | +0.00 |",
        "| mean of 2 | PTQ | 4 | per-channel | 68.75 | 63.25 | -2.38 |",
    ]
    assert len(_benchmark().format_table(rows[:2]).splitlines()) == 4  # one seed: no mean rows
