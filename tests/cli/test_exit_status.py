"""Exit statuses through the installed console script: a failed check exits 1 (it once exited 0:
under the root's non-standalone mode a command's `typer.Exit(1)` came back as an ignored return
value), bad input 2, success 0; a diverged run 1, an interrupted one 3; a demo whose NIR check fails 1.
"""

from __future__ import annotations

import inspect

import pytest
import typer

from qkf_snn.cli import demo as demo_cli
from qkf_snn.cli.main import app


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny AV cache (square 16×16 inputs, as NIR export wants) and two 1-epoch runs of the same
    deployable model with different seeds."""
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.training import compose
    from qkf_snn.training.loop import train

    root = tmp_path_factory.mktemp("exit")
    raw = synthesize("crema", root / "raw", clips=18, seed=0, seconds=1.0)
    prepare("crema", raw, root / "cache", time_steps=2, image_size=16, n_mels=16, audio_width=16,
            clip_seconds=1.0, progress=False)  # fmt: skip
    ckpts = []
    for seed in (0, 1):
        overrides = {
            "data.dir": str(root / "cache"), "data.batch_size": 6, "data.workers": 0, "optim.epochs": 1,
            "run.out": str(root / "runs"), "run.name": f"s{seed}", "run.seed": seed, "run.progress": "none",
            "run.bn_recalibration": 1, "run.threads": 1, "model.name": "qkf_av_tiny_deploy",
        }  # fmt: skip
        ckpts.append(train(compose("crema", "av", overrides=overrides)).run_dir / "best.pt")
    return root, ckpts


@pytest.mark.slow
def test_verify_nir_exits_1_on_divergence_2_on_bad_input_0_on_success(qkf, runs):
    root, (ckpt, other) = runs
    graph = root / "s0.nir"
    exported = qkf("export", "nir", ckpt, "--out", graph, "--no-layers")
    assert exported.returncode == 0 and graph.is_file(), exported.stderr
    common = ["--data", root / "cache", "--samples", 2, "--no-fold-check"]

    same = qkf("verify", "nir", graph, "--checkpoint", ckpt, *common)
    assert same.returncode == 0 and "PASSED" in same.stdout, same.stdout + same.stderr

    diverged = qkf("verify", "nir", graph, "--checkpoint", other, *common)  # same architecture, seed 1
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    assert "FAILED: first divergence at node" in " ".join(diverged.stdout.split())
    assert "Traceback" not in diverged.stderr

    missing = qkf("verify", "nir", root / "missing.nir", "--checkpoint", ckpt, *common)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1, missing.stderr
    assert "missing.nir" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_a_diverging_training_run_exits_1_with_one_line(qkf, runs, tmp_path):
    # lr 1e18 overflows the weights within a step or two (see tests/training/test_train.py)
    root, _ = runs
    args = f"train crema --modality audio --data {root / 'cache'} --out {tmp_path} --name nan --size tiny "
    args += "--dims 8 16 16 --num-heads 1 1 1 --batch-size 4 --workers 0 --lr 1e18 --warmup-epochs 0 "
    args += "--checkpoint-every 1 --patience 0 --progress none --threads 1 --set run.bn_recalibration=1"
    result = qkf(*args.split())
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert "not finite" in result.stderr and str(tmp_path / "nan" / "last.pt") in result.stderr


def test_an_interrupted_run_exits_3_with_one_line(monkeypatch, run_main, tmp_path):
    from qkf_snn.training import loop

    def interrupted(cfg, **kw):
        raise loop.TrainingInterrupted("stopped by a signal; resume from x/last.pt with --resume")

    monkeypatch.setattr(loop, "train", interrupted)
    code, _, err = run_main("train", "crema", "--out", tmp_path)
    assert code == 3 and err == "error: stopped by a signal; resume from x/last.pt with --resume\n"


@pytest.mark.parametrize(("passed", "status"), [(True, 0), (False, 1)])
def test_demo_exits_1_when_its_nir_check_fails(monkeypatch, run_main, tmp_path, passed, status):
    monkeypatch.setattr(demo_cli, "run_demo", lambda settings: {"nir": {"passed": passed}})
    monkeypatch.setattr(demo_cli, "print_summary", lambda console, summary, out: None)
    code, _, _ = run_main("demo", "--out", tmp_path)
    assert code == status


def test_every_command_returns_none():
    """In non-standalone mode main() takes a command's return value as its typer.Exit status, so a
    command that returned something else would be misread: every command returns None."""

    def callbacks(cmd):
        sub = getattr(cmd, "commands", None)
        return [cmd.callback] if sub is None else [cb for c in sub.values() for cb in callbacks(c)]

    found = callbacks(typer.main.get_command(app))
    assert len(found) >= 13
    for callback in found:
        wrapped = inspect.unwrap(callback)
        assert inspect.signature(wrapped).return_annotation in (None, "None"), wrapped.__qualname__
