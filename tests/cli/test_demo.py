"""`qkf demo` end to end on a very small synthetic set, and a rerun that reuses every step."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from qkf_snn.cli.demo import DemoSettings, run_demo


def test_demo_runs_end_to_end_and_reuses_its_results(tmp_path, monkeypatch):
    for key in AVX2_HOST:  # the demo pins the CPU code paths through the environment: restore it after
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "demo"
    first = run_demo(DemoSettings(out=out, clips=60, epochs=1, workers=1, verify_samples=2,
                                  console=Console(file=io.StringIO())))  # fmt: skip
    assert set(first["models"]) == {"audio", "video", "av"}
    for row in first["models"].values():
        assert 0.0 <= row["val_acc"] <= 1.0 and 0.0 <= row["test_acc"] <= 1.0
    assert {"val_acc_audio_head", "val_acc_video_head"} <= set(first["models"]["av"])
    assert first["nir"]["passed"] and first["nir"]["spike_mismatches"] == 0
    assert first["nir"]["spikes_compared"] > 0
    assert first["profile"]["energy_uJ_per_sample"] > 0
    assert (out / "summary.json").is_file() and (out / "runs" / "av" / "model.nir").is_file()

    log = io.StringIO()
    second = run_demo(DemoSettings(out=out, clips=60, epochs=1, workers=1, verify_samples=2,
                                   console=Console(file=log, width=200)))  # fmt: skip
    assert log.getvalue().count("reusing") == 4  # raw set and the three runs
    assert second["models"] == first["models"] and second["nir"] == first["nir"]


# What this machine's CPU libraries would pick differently on an AVX2-only host of the same kind.
AVX2_HOST = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def _demo(out: Path, env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if k not in AVX2_HOST}
    qkf = Path(sys.executable).parent / "qkf"  # the installed console script, as users call it
    done = subprocess.run(
        [str(qkf), "demo", "--out", str(out), "--clips", "60", "--epochs", "2"],
        env=base | env | {"COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _table(stdout: str) -> str:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return "\n".join(lines[start : end + 1])


def _epochs(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time_s", "cpu_s")} for r in records]


@pytest.mark.slow
def test_demo_prints_the_same_numbers_with_any_threads_environment_and_cpu_code_paths(tmp_path):
    """Two fresh `qkf demo` processes: one with 1 OpenMP/MKL thread and this host's own CPU code paths,
    one with 2 threads and the code paths of an AVX2-only host. Unpinned, the second's gradients
    differ in the last bits from the first epoch on; pinned, every number is identical."""
    a, b = tmp_path / "a", tmp_path / "b"
    out_a = _demo(a, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    out_b = _demo(b, {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", **AVX2_HOST})
    assert _table(out_a) == _table(out_b)  # what the command prints
    for modality in ("audio", "video", "av"):
        epochs_a, epochs_b = _epochs(a / "runs" / modality), _epochs(b / "runs" / modality)
        assert len(epochs_a) == 2 and epochs_a == epochs_b  # losses as exact floats, epoch by epoch
        res_a, res_b = (json.loads((d / "runs" / modality / "results.json").read_text()) for d in (a, b))
        assert res_a["val"] == res_b["val"] and res_a["test"] == res_b["test"]
        env = res_a["environment"]
        assert env["cpu_capability"] == "AVX2" and env["cpu_isa_pinned"] and env["threads"] == 2
        assert env["deterministic_algorithms"] and res_b["environment"] == env
    sum_a, sum_b = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("energy_uJ_per_sample", "firing_rate", "spikes_per_synapse"):
        assert sum_a["profile"][key] == sum_b["profile"][key]
    assert "CPU kernels AVX2 (pinned), 2 threads" in sum_a["protocol"] == sum_b["protocol"]
    # summary.md, the block the README shows, holds the printed numbers
    block, printed = (a / "summary.md").read_text(), _table(out_a)
    for modality, name in (("audio", "audio"), ("video", "video"), ("av", "audio-visual (concat)")):
        val, test = (f"{sum_a['models'][modality][k]:.3f}" for k in ("val_acc", "test_acc"))
        assert f"| {name} | {val} | {test} |" in block
        assert re.search(rf"│ {modality} .*│ +{val} │ +{test} │", printed)
