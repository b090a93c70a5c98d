"""`qkf demo` end to end on a very small synthetic set, and a rerun that reuses every step."""

from __future__ import annotations

import io

from rich.console import Console

from qkf_snn.cli.demo import DemoSettings, run_demo


def test_demo_runs_end_to_end_and_reuses_its_results(tmp_path):
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
