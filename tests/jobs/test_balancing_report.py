"""jobs/balancing_report.py: the table and paired differences behind docs/modality_balancing.md."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "jobs" / "balancing_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("balancing_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(root: Path, name: str, test_acc: float, val_acc: float, video_head: float | None = None) -> None:
    run = root / name
    run.mkdir(parents=True)
    test = {"acc": test_acc, "f1_macro": test_acc - 0.01}
    if video_head is not None:
        test |= {"acc_audio": 0.7, "acc_video": video_head}
    results = {"best_epoch": 1, "val": {"acc": val_acc}, "test": test}
    (run / "results.json").write_text(json.dumps(results))
    history = [
        {"epoch": e, "train_ce": 2.0 - e, "val_loss": 1.5 - e / 2, "val_acc": val_acc * (e + 1) / 2}
        | ({"val_acc_video": 0.25 * (e + 1)} if video_head is not None else {})
        for e in range(2)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (run / "steps.jsonl").write_text("")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for seed, (plain, bal) in enumerate([(0.80, 0.84), (0.82, 0.81), (0.78, 0.83)]):
        fake_run(tmp_path, f"av_plain_s{seed}", plain, 0.5, video_head=0.5)
        fake_run(tmp_path, f"av_bal_s{seed}", bal, 0.6, video_head=0.6)
    fake_run(tmp_path, "audio_s0", 0.75, 0.7)
    fake_run(tmp_path, "audio_s7", 0.77, 0.7)
    (tmp_path / "not_a_run").mkdir()
    return tmp_path


def test_table_is_mean_and_sample_std_over_seeds(report, runs):
    table = report.table(report.load(runs)).splitlines()
    # rows in LABELS order: audio, then AV plain, then the recipe
    assert table[2] == "| audio only | 2 | 76.0 ± 1.4 | 70.0 ± 0.0 | 0.750 | – | – | 2, 2 |"
    plain = "| AV, no balancing | 3 | 80.0 ± 2.0 | 50.0 ± 0.0 | 0.790 | 70.0 ± 0.0 | 50.0 ± 0.0 | 2, 2, 2 |"
    assert table[3] == plain
    assert table[4].startswith(f"| {report.LABELS['av_bal']} | 3 | 82.7 ± 1.5 |")


def test_seed_filter_and_paired_differences(report, runs):
    line = report.paired(report.load(runs), "av_plain", "av_bal")
    assert "+2.67 ± 3.21 over 3 seeds, better in 2 (s0 +4.00, s1 -1.00, s2 +5.00)" in line
    only = report.load(runs, seeds={0})
    assert len(only["audio"]) == 1 and len(only["av_plain"]) == 1
    assert report.paired(only, "audio", "av_plain").endswith("better in 1 (s0 +5.00)")
    assert report.paired(report.load(runs), "av_aux", "av_bal").endswith("no seed has both")


def test_command_line_writes_the_png(runs, tmp_path):
    png = tmp_path / "curves.png"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(runs), "--png", str(png), "--paired", "av_plain", "av_bal"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "| AV, no balancing | 3 |" in out.stdout and "better in 2" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
