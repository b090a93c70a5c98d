"""`qkf demo` end to end on a very small synthetic set, through the installed console script: two fresh
runs with different thread settings and CPU code paths print identical numbers, and a rerun reuses
every step except a run made with other settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_demo_prints_the_same_numbers_with_any_threads_environment_and_cpu_code_paths(tmp_path):
    """Run a: 1 OpenMP/MKL thread and this host's own CPU code paths (AVX-512 here). Run b: 2 threads
    and an AVX2-only host's code paths. Unpinned (the recipes before run.cpu_isa), b's losses differ
    from a's in the last digits from the first epoch on; pinned, every number is identical."""
    a, b = tmp_path / "a", tmp_path / "b"
    out_a = _demo(a, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    out_b = _demo(b, {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", **AVX2_HOST})
    assert _table(out_a) == _table(out_b)  # what the command prints
    for modality in ("audio", "video", "av"):
        epochs_a, epochs_b = _epochs(a / "runs" / modality), _epochs(b / "runs" / modality)
        assert len(epochs_a) == 2 and epochs_a == epochs_b  # losses as exact floats, epoch by epoch
        res_a, res_b = (_json(d / "runs" / modality / "results.json") for d in (a, b))
        assert res_a["val"] == res_b["val"] and res_a["test"] == res_b["test"]
        env = res_a["environment"]
        assert env["cpu_capability"] == "AVX2" and env["cpu_isa_pinned"] and env["threads"] == 2
        assert env["deterministic_algorithms"] and res_b["environment"] == env
    sum_a, sum_b = _json(a / "summary.json"), _json(b / "summary.json")
    for key in ("energy_uJ_per_sample", "firing_rate", "spikes_per_synapse"):
        assert sum_a["profile"][key] == sum_b["profile"][key] > 0
    assert sum_a["nir"]["passed"] and sum_a["nir"]["spike_mismatches"] == 0 < sum_a["nir"]["spikes_compared"]
    assert "CPU kernels AVX2 (pinned), 2 threads" in sum_a["protocol"] == sum_b["protocol"]
    assert {"val_acc_audio_head", "val_acc_video_head"} <= set(sum_a["models"]["av"])
    # the last step: the AV model's 8-bit export, bit-exact against the quantized model, on every chip
    deploy_a, deploy_b = sum_a["deploy"], sum_b["deploy"]
    for key in ("val_acc", "test_acc", "passed", "spikes_compared", "spike_mismatches", "platforms"):
        assert deploy_a[key] == deploy_b[key]
    assert deploy_a["passed"] and deploy_a["spike_mismatches"] == 0 < deploy_a["spikes_compared"]
    assert deploy_a["measured_weight_bits"] == 8 and deploy_a["platforms"]["loihi2"]["verdict"] == "PASS"
    assert re.search(r"│ av, 8-bit weights .*PASS: 0 / [\d,]+ spikes", _table(out_a).replace("\n", " "))
    # summary.md, the block the README shows, holds the printed numbers
    block, printed = (a / "summary.md").read_text(), _table(out_a)
    for modality, name in (("audio", "audio"), ("video", "video"), ("av", "audio-visual (concat)")):
        val, test = (f"{sum_a['models'][modality][k]:.3f}" for k in ("val_acc", "test_acc"))
        assert f"| {name} | {val} | {test} |" in block
        assert re.search(rf"│ {modality} .*│ +{val} │ +{test} │", printed)

    # A rerun reuses every step, except a run whose settings are not the recipe's (an older recipe):
    # that one is trained again, to the same numbers.
    config = b / "runs" / "audio" / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["run"]["deterministic"] = False
    config.write_text(yaml.safe_dump(settings))
    out_again = _demo(b, {"OMP_NUM_THREADS": "1"})
    assert out_again.count("reusing") == 3  # raw set, video and av runs
    assert "runs/audio was trained with other settings: training it again" in " ".join(out_again.split())
    assert _table(out_again) == _table(out_b)
    assert yaml.safe_load(config.read_text())["run"]["deterministic"] is True
