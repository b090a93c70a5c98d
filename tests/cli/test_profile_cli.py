"""`qkf profile CHECKPOINT --data DIR`: a checkpoint as `qkf train` writes it, a synthetic cache,
and one-line errors for bad input."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained qkf_av_tiny checkpoint in the training format, over a synthetic CREMA-D cache."""
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.training.build import DataInfo, model_spec
    from qkf_snn.training.checkpoint import save_checkpoint
    from qkf_snn.training.config import TrainConfig
    from qkf_snn.training.data import build_dataset

    root = tmp_path_factory.mktemp("cli")
    raw = synthesize("crema", root / "raw", clips=30, seed=0)
    cache = root / "cache"
    prepare("crema", raw, cache, time_steps=2, image_size=32, n_mels=32, audio_width=32, progress=False)
    cfg = TrainConfig.from_dict({"dataset": "crema", "modality": "av", "model": {"size": "tiny"}})
    info = DataInfo.of(build_dataset(cfg, cache, "train"))
    spec = model_spec(cfg, info)
    model = spec.build()
    path = root / "best.pt"
    payload = {"kind": "best", "spec": spec.to_dict(), "data": info.to_dict(), "config": cfg.to_dict(),
               "model": model.state_dict(), "epoch": 3, "step": 9, "metrics": {"acc": 0.25}}  # fmt: skip
    save_checkpoint(path, payload)
    return path, cache


def test_profile_checkpoint_over_a_split(run_main, checkpoint, tmp_path):
    path, cache = checkpoint
    out = tmp_path / "prof"
    code, stdout, stderr = run_main(
        "profile", path, "--data", cache, "--split", "train", "--samples", "5",
        "--batch-size", "2", "--out", out, "--integer-inputs", "mac",
    )  # fmt: skip
    assert code == 0, stderr
    doc = json.loads((out / "profile.json").read_text())
    p = doc["protocol"]
    assert (p["samples"], p["batches"], p["time_steps"]) == (5, 3, 2)
    assert p["model_name"] == "qkf_av_tiny" and p["dataset"] == "crema" and p["split"] == "train"
    assert p["checkpoint_kind"] == "best" and p["checkpoint_epoch"] == 3
    assert p["options"]["integer_inputs"] == "mac"
    assert {"audio", "video"} <= set(doc["groups"])
    assert (out / "profile.md").is_file() and (out / "firing_rates.png").is_file()
    assert "Synaptic operations per sample, every convention" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["profile", "missing.pt", "--data", "."], "error: CHECKPOINT missing.pt: no such file"),
        (["profile", "CKPT", "--data", "nowhere"], "error: --data nowhere: no such directory"),
        (["profile", "CKPT", "--data", "DATA", "--first-layer", "twice"],
         "error: --first-layer: 'twice' is not one of T, once"),
        (["profile", "CKPT", "--data", "DATA", "--samples", "0"], "error: --samples 0: must be at least 1"),
        (["profile", "CKPT", "--data", "DATA", "--split", "nosuch"],
         "split 'nosuch': unknown (choose train, val, test)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(run_main, checkpoint, args, message):
    path, cache = checkpoint
    args = [str(path) if a == "CKPT" else str(cache) if a == "DATA" else a for a in args]
    code, _, stderr = run_main(*args)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_installed_qkf_profile_numbers_do_not_depend_on_the_batch_size(checkpoint, tmp_path):
    """The installed `qkf profile`, as users call it: the same 4 clips profiled with --batch-size 4
    and --batch-size 1 give the same per-sample numbers in profile.json (the issue's repro used
    --integer-inputs mac: +3.3 % as one batch), and the split-level paper total says so."""
    import subprocess
    from pathlib import Path

    path, cache = checkpoint
    qkf = Path(sys.executable).with_name("qkf")
    docs = {}
    for batch in (4, 1):
        out = tmp_path / f"b{batch}"
        args = [str(qkf), "profile", str(path), "--data", str(cache), "--split", "train", "--samples", "4",
                "--batch-size", str(batch), "--out", str(out), "--integer-inputs", "mac"]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        docs[batch] = json.loads((out / "profile.json").read_text())
        assert "split-level" in (out / "profile.md").read_text() and "split-level" in proc.stdout
    one, each = (docs[b]["totals"]["conventions"] for b in (4, 1))
    for conv in one:
        for key, value in one[conv].items():
            assert value == (
                pytest.approx(each[conv][key], rel=1e-6) if isinstance(value, float) else each[conv][key]
            )
    assert one["paper"]["split_level_products"] == 6  # QKTA masks (2 stages) and SSA Kᵀ·V, per modality
    assert one["paper"]["scope"].startswith("split-level") and one["exact"]["scope"].startswith("per sample")
    for a, b in zip(docs[4]["measurements"]["synapses"], docs[1]["measurements"]["synapses"], strict=True):
        assert (a["name"], a["input_kind"], a["role"]) == (b["name"], b["input_kind"], b["role"])
        for key in ("dense_macs", "events_value", "events_nonzero", "neurobench_ac", "neurobench_mac"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a["name"], key)
