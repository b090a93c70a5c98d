"""The original research code's command line runs unchanged: its option names are aliases, `--model
qkf_snn` is the seed-sized model of the chosen modality, and `--num-heads 2 4 6` / `--depths 2 4 8`
(argparse nargs='+') reach the model, never silently dropped."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from qkf_snn.cli.main import main

QKF = Path(sys.executable).parent / "qkf"  # the console script installed in this environment
# Verbatim from the issue; only DIR is filled in (and the run goes to a temporary folder).
LINE = (
    "train crema --modality video --data-path DIR --model qkf_snn --epochs 100 --batch-size 32 "
    "--lr 0.0005 --patience-epochs 40 --embed-dims 192 --num-heads 2 4 6 --depths 2 4 8 --time-step 8 "
    "--output-dir ./out/crema/video"
)
SEED = {"dims": (48, 96, 192), "heads": (2, 4, 6), "depths": (2, 4, 8)}  # the seed's model


def parsed(monkeypatch, tmp_path, line: str):
    """The run configuration ``qkf <line>`` would train (the training itself replaced by a stub)."""
    from qkf_snn.training import loop

    seen = []
    monkeypatch.setattr(loop, "train", lambda cfg, **kw: seen.append(cfg))
    monkeypatch.setattr(sys, "argv", ["qkf", *shlex.split(line.replace("DIR", str(tmp_path / "cache")))])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    return seen[0]


def test_the_research_line_sets_every_value(monkeypatch, tmp_path):
    cfg = parsed(monkeypatch, tmp_path, LINE)
    assert (cfg.dataset, cfg.modality, cfg.model_name) == ("crema", "video", "qkf_video_small")
    assert (cfg.model.embed_dims, cfg.model.heads, cfg.model.depths) == (192, (2, 4, 6), (2, 4, 8))
    assert (cfg.data.dir, cfg.data.time_steps, cfg.data.batch_size) == (str(tmp_path / "cache"), 8, 32)
    assert (cfg.optim.epochs, cfg.optim.lr, cfg.run.patience) == (100, 0.0005, 40)
    assert cfg.run.out == "./out/crema/video"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("--num-heads 2,4,6 --depths 2,4,8", "--num-heads 2 4 6 --depths 2 4 8"),
        ("--data DIR --out ./out/crema/video --patience 40 --time-steps 8", None),
    ],
)
def test_other_spellings_give_the_same_run(monkeypatch, tmp_path, spelling, canonical):
    line = LINE.replace(canonical, spelling) if canonical else LINE
    if canonical is None:  # the project's own option names instead of the research code's
        aliases = {"--data-path": "--data", "--output-dir": "--out", "--patience-epochs": "--patience",
                   "--time-step": "--time-steps"}  # fmt: skip
        for alias, name in aliases.items():
            line = line.replace(f"{alias} ", f"{name} ")
    assert line != LINE
    assert parsed(monkeypatch, tmp_path, line).to_dict() == parsed(monkeypatch, tmp_path, LINE).to_dict()


@pytest.mark.parametrize("modality", ["audio", "video", "av"])
def test_qkf_snn_is_the_seed_sized_model_of_each_modality(modality):
    from qkf_snn.training import compose

    cfg = compose("crema", modality, overrides={"model.name": "qkf_snn"})
    assert cfg.model_name == f"qkf_{modality}_small" and cfg.model.size == "small"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("--num-heads 2 4 5", "stage dim 192 is not divisible by 5 heads"),
        ("--depths 2 4 8 1", "depths has 4 entries but dims has 3 stages"),
    ],
)
def test_values_that_contradict_the_model_are_refused_in_one_line(research_cache, tmp_path, extra, message):
    line = LINE.replace("DIR", str(research_cache)).replace("./out/crema/video", str(tmp_path))
    line = line.replace("--epochs 100", "--epochs 1")  # refused before the first step anyway
    result = subprocess.run([str(QKF), *shlex.split(line), *extra.split()], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)  # fmt: skip
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert result.returncode == 2 and errors == [f"error: {message}"], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def research_cache(tmp_path_factory) -> Path:
    """The smallest CREMA-D cache the line can train on, made by the project's synth and prepare: 3
    clips per emotion (6 train / 6 val / 6 test, so one batch of 32 holds the train split), T = 8
    (the line's --time-step), 8×8 frames, video only."""
    from qkf_snn.datasets import prepare, synthesize

    root = tmp_path_factory.mktemp("research")
    raw = synthesize("crema", root / "raw", clips=18, seed=0, seconds=1.0)
    prepare("crema", raw, root / "cache", time_steps=8, image_size=8, n_mels=16, audio_width=8,
            clip_seconds=1.0, modalities=("video",), progress=False)  # fmt: skip
    return root / "cache"


@pytest.mark.slow
def test_the_research_line_trains_the_seed_model_for_100_epochs(research_cache, tmp_path):
    from qkf_snn.models import count_parameters, create_model
    from qkf_snn.training.checkpoint import load_model

    args = shlex.split(LINE.replace("DIR", str(research_cache)))
    result = subprocess.run([str(QKF), *args], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "error:" not in result.stderr
    run = tmp_path / "out" / "crema" / "video" / "crema_video_qkf_video_small_s0"
    results = json.loads((run / "results.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # all 100 epochs, or an early stop exactly 40 epochs after the best one
    expected = results["best_epoch"] + 41 if results["stopped_early"] else 100
    assert results["epochs_run"] == len(history) == expected
    assert results["model"]["name"] == "qkf_video_small" and results["model"]["kwargs"]["time_steps"] == 8
    model = load_model(run / "best.pt").model.encoder
    c = model.config
    assert {"dims": c.dims, "heads": c.heads, "depths": c.depths} == SEED and c.time_steps == 8
    assert [len(stage.blocks) for stage in model.stages] == [2, 4, 8]
    assert [stage.blocks[0].attn.heads for stage in model.stages] == [2, 4, 6]
    seed_model = create_model("qkf_video_small", num_classes=6, time_steps=8, input_size=(8, 8))
    assert count_parameters(model) == count_parameters(seed_model)
    assert results["test"]["n"] == 6 and 0.0 <= results["test"]["acc"] <= 1.0
