"""`qkf sweep energy` through the installed console script: a 2-point sweep of a tiny model for one
epoch writes the table and the plot; a rerun skips finished points (their files untouched, the log
says so); a point another process holds is left to it; a sweep killed mid-point resumes and
completes; a folder holding another sweep is refused; a diverged point does not stop the others."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qkf_snn.errors import UserError
from qkf_snn.sweep.energy import SweepSpec, claim, point_config, points, prepare, run_sweep
from qkf_snn.training.config import parse_set

QKF = str(Path(sys.executable).with_name("qkf"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
BASE = [
    "model.name=qkf_av_tiny_deploy", "model.dims=[8,16,16]", "model.heads=[1,1,1]", "data.batch_size=4",
    "data.workers=0", "optim.epochs=1", "run.bn_recalibration=0", "run.threads=1", "run.progress=none",
    "run.checkpoint_every=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    from qkf_snn.datasets import prepare, synthesize

    root = tmp_path_factory.mktemp("sweep")
    raw = synthesize("crema", root / "raw", clips=24, seed=0, seconds=1.0)
    prepare("crema", raw, root / "cache", time_steps=2, image_size=16, n_mels=16, audio_width=16,
            clip_seconds=1.0, progress=False)  # fmt: skip
    return root / "cache"


def sweep_args(cache: Path, out: Path, *extra: str, base: list[str] = BASE) -> list[str]:
    sets = [w for kv in base for w in ("--set", kv)]
    return [QKF, "sweep", "energy", "crema", "--data", str(cache), "--out", str(out), "--weights", "0.5",
            *sets, *extra]  # fmt: skip


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)


def spec_of(cache: Path, out: Path) -> SweepSpec:
    overrides = parse_set(BASE)  # as the command line's --set values are read
    return SweepSpec("crema", "av", out, "weights", ["0.5"], overrides={**overrides, "data.dir": str(cache)})


def test_two_points_then_skip_then_share(cache: Path, tmp_path: Path):
    out = tmp_path / "sw"
    names = ["s0_unconstrained", "s0_weight_0.5"]
    assert [p.name for p in points(spec_of(cache, out))] == names
    # another process holds the unconstrained point: this sweep trains the other one, leaves that one
    with claim(out, points(spec_of(cache, out))[0]):
        held = run(sweep_args(cache, out, "--point", "0"))
        assert held.returncode == 2 and held.stderr.count("\n") == 1 and "in use by" in held.stderr
        first = run(sweep_args(cache, out))
    assert first.returncode == 0, first.stderr
    assert "s0_unconstrained: in use by" in first.stdout and "left to it" in first.stdout
    assert "point 1 s0_weight_0.5: training" in first.stdout
    assert (out / "runs" / names[1] / "point.json").is_file()
    assert not (out / "runs" / names[0]).exists()
    assert json.loads((out / "front.json").read_text())["missing"] == [names[0]]
    stamp = (out / "runs" / names[1] / "point.json").stat().st_mtime_ns
    best = (out / "runs" / names[1] / "best.pt").stat().st_mtime_ns

    second = run(sweep_args(cache, out))
    assert second.returncode == 0, second.stderr
    assert "point 0 s0_unconstrained: training" in second.stdout
    assert "point 1 s0_weight_0.5: finished, skipped" in second.stdout
    assert (out / "runs" / names[1] / "point.json").stat().st_mtime_ns == stamp
    assert (out / "runs" / names[1] / "best.pt").stat().st_mtime_ns == best
    doc = json.loads((out / "front.json").read_text())
    assert doc["missing"] == [] and [r["point"] for r in doc["runs"]] == names
    for r in doc["runs"]:
        results = json.loads((out / "runs" / r["point"] / "results.json").read_text())
        assert r["val_acc"] == results["val"]["acc"] and r["test_acc"] == results["test"]["acc"]
        assert r["val_energy_uj"] > 0 and 0 <= r["val_firing_rate"] <= 1
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "front.md").read_text()
    assert "| unconstrained | 1 |" in md and "| penalty 0.5 | 1 |" in md

    # the same folder with other settings is refused before any work; so is a point it does not have
    with pytest.raises(UserError, match=r"holds a sweep with other settings \(seeds differ\)"):
        prepare(dataclasses.replace(spec_of(cache, out), seeds=[1]))
    with pytest.raises(UserError, match="--point 2: the sweep has points 0 to 1"):
        run_sweep(spec_of(cache, out), only=2)


def test_a_killed_sweep_resumes_its_point(cache: Path, tmp_path: Path):
    out = tmp_path / "sw"
    # three epochs and a checkpoint every step, so that the kill lands after a checkpoint, mid-point
    base = [kv for kv in BASE if not kv.startswith(("optim.epochs", "run.checkpoint_every"))]
    args = sweep_args(cache, out, "--point", "0", base=[*base, "optim.epochs=3", "run.checkpoint_every=1"])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    last = out / "runs" / "s0_unconstrained" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.is_file() and not (out / "runs" / "s0_unconstrained" / "point.json").exists()
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert "point 0 s0_unconstrained: resuming" in again.stdout
    log = [json.loads(line) for line in (out / "runs" / "s0_unconstrained" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in log] == [0, 1, 2]  # every epoch once, none twice
    doc = json.loads((out / "front.json").read_text())
    assert doc["missing"] == ["s0_weight_0.5"] and [r["epochs_run"] for r in doc["runs"]] == [3]


def test_a_diverged_point_does_not_stop_the_others(cache: Path, tmp_path: Path, monkeypatch):
    from qkf_snn.sweep import energy as sweep
    from qkf_snn.training.loop import TrainingDiverged

    seen = []

    def train_and_measure(spec, point, cfg, con):
        seen.append(point.name)
        if point.kind == "unconstrained":
            raise TrainingDiverged("loss (nan) not finite at step 3")

    monkeypatch.setattr(sweep, "_run_point", train_and_measure)
    with pytest.raises(sweep.PointsDiverged, match=r"1 point\(s\) diverged: s0_unconstrained \("):
        run_sweep(spec_of(cache, tmp_path / "sw"))
    assert seen == ["s0_unconstrained", "s0_weight_0.5"]
    assert json.loads((tmp_path / "sw" / "front.json").read_text())["missing"] == seen


def test_points_that_do_not_price_energy_keep_every_energy_setting_at_its_default(tmp_path: Path):
    """The unconstrained run and the twin are the same run whatever model, warm-up or multiplier step
    the sweep gives its priced points, so a sweep of another model or warm-up can reuse them."""
    spec = dataclasses.replace(
        spec_of(tmp_path, tmp_path / "sw"),
        mode="budgets", values=["3uJ"], relu_twin=True, energy_model="platform_truenorth",
        overrides={**spec_of(tmp_path, tmp_path / "sw").overrides, "energy.start_epoch": 2,
                   "energy.multiplier_lr": 0.1, "energy.model": "h45_int8_exact"},
    )  # fmt: skip
    unconstrained, relu, budget = points(spec)
    for ref in (unconstrained, relu):
        energy = dataclasses.asdict(point_config(spec, ref).energy)
        assert energy == {"weight": 0.0, "budget": None, "model": "h45_fp32_paper", "multiplier_lr": 0.05,
                          "start_epoch": 0}  # fmt: skip
    energy = dataclasses.asdict(point_config(spec, budget).energy)
    assert energy == {"weight": 0.0, "budget": "3uJ", "model": "platform_truenorth", "multiplier_lr": 0.1,
                      "start_epoch": 2}  # fmt: skip


def test_a_manifest_that_spells_the_point_overrides_otherwise_is_the_same_sweep(tmp_path: Path):
    """sweep.json from before the reference points reset every energy setting: the same points (name,
    kind, value, seed), so the folder is accepted; a different point list is not."""
    spec = spec_of(tmp_path, tmp_path / "sw")
    prepare(spec)
    path = tmp_path / "sw" / "sweep.json"
    manifest = json.loads(path.read_text())
    for point in manifest["points"]:
        if point["kind"] == "unconstrained":
            point["overrides"] = {"energy.weight": 0.0, "energy.budget": None}  # the old spelling
    path.write_text(json.dumps(manifest))
    prepare(spec)
    manifest["points"][0]["name"] = "s0_other"
    path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"holds a sweep with other settings \(points differ\)"):
        prepare(spec)
