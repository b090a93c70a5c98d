"""`qkf bench`: a tiny run writes a complete JSON record and a Markdown table; bad options are one
line on stderr and exit status 2."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from qkf_snn.cli import bench
from qkf_snn.cli.main import main


def test_bench_lif_tiny_run_writes_results(tmp_path):
    args = ["lif", "--device", "cpu", "--time-steps", "2,3", "--batch", "1", "--repeats", "1",
            "--iters", "1", "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(bench.app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "lif-cpu.json").read_text())
    rows = record["rows"]
    assert [(r["T"], r["variant"]) for r in rows] == [
        (T, v) for T in (2, 3) for v in ("snntorch", "ours", "spikingjelly")
    ]
    for r in rows:
        assert r["ms_per_step"] > 0 and r["peak_bytes_per_sample"] > 0
        assert r["samples_per_s"] == pytest.approx(1e3 / r["ms_per_step"])
        assert 0 < r["firing_rate"] < 1
    ours = [r for r in rows if r["variant"] == "ours"]
    assert all(r["backend"] == "fused" for r in ours)
    assert all(r["vs_snntorch"] == pytest.approx(next(
        a["ms_per_step"] for a in rows if a["variant"] == "snntorch" and a["T"] == r["T"]) / r["ms_per_step"])
        for r in ours)  # fmt: skip
    env = record["environment"]
    assert env["versions"]["torch"] == torch.__version__ and env["threads"] == 1
    assert "| T | variant |" in result.output and "(b) qkf backend [fused]" in result.output


def test_bench_train_tiny_run(tmp_path):
    args = ["train", "--device", "cpu", "--batch", "1", "--repeats", "1", "--iters", "1", "--threads", "1",
            "--variants", "snntorch,ours", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(bench.app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "train-cpu.json").read_text())
    assert record["settings"]["model"] == "qkf_av_tiny" and record["settings"]["time_steps"] == 4
    assert [r["variant"] for r in record["rows"]] == ["snntorch", "ours"]
    assert record["rows"][0]["vs_snntorch"] == 1.0 and record["rows"][1]["vs_spikingjelly"] is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["lif", "--time-steps", "0"], "--time-steps must be comma-separated positive integers"),
        (["lif", "--variants", "ours,fast"], "--variants: unknown ['fast']"),
        (["lif", "--dtype", "float64"], "--dtype must be auto, float32 or bfloat16"),
        (["train", "--device", "tpu"], "--device must be auto, cpu or cuda"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["qkf", "bench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_requested_without_gpu(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["qkf", "bench", "lif", "--device", "cuda"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
