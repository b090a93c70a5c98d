"""`qkf train` / `qkf eval` end to end on a tiny cache, and every bad input as one line, exit 2."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from qkf_snn.cli.main import main
from qkf_snn.training import compose, load_model
from qkf_snn.training.checkpoint import read_checkpoint
from qkf_snn.training.loop import train
from qkf_snn.training.terms import LossTerm

from .conftest import tiny_overrides

TINY_FLAGS = (
    "--size tiny --dims 8 16 16 --num-heads 1 1 1 --batch-size 4 --workers 0 --lr 2e-3 --warmup-epochs 1 "
    "--patience 0 --progress none --threads 1 --set run.bn_recalibration=2"
).split()


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run the real entry point in-process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["qkf", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class EvaluationPasses(LossTerm):
    """Watches, through the public loss-term hook, how many clips each evaluation pass sees."""

    name = "passes"

    def __init__(self) -> None:
        self.clips: list[int] = []
        self.counting = False

    def attach(self, model):
        self.model = model

    def __call__(self, outputs, batch):
        if self.counting:  # a training step inside an evaluation pass would be a bug
            raise AssertionError("training step during evaluation")
        return outputs["logits"].new_zeros(()), {}

    def evaluate_begin(self):
        self.counting = True
        self.clips.append(0)
        self._hook = self.model.audio_head.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        self.clips[-1] += output.shape[-2]  # [T, B, classes]

    def evaluate_end(self):
        self.counting = False
        self._hook.remove()
        return {}


@pytest.fixture(scope="module")
def av_run(crema_cache, tmp_path_factory):
    """One 2-epoch AV run with OGM-GE and auxiliary losses, watching its evaluation passes."""
    out = tmp_path_factory.mktemp("runs")
    cfg = compose("crema", "av", overrides=tiny_overrides(crema_cache, out, **{"model.fusion": "qk"}))
    passes = EvaluationPasses()
    result = train(cfg, terms=[passes])
    return cfg, result, passes.clips


def test_a_run_writes_checkpoints_logs_plots_and_tests_once(av_run):
    cfg, result, passes = av_run
    run = cfg.run_dir
    assert passes == [6, 6, 6]  # the 6 val clips each epoch, then the 6 test clips once
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl", "metrics.csv", "steps.jsonl",
                 "results.json", "curves.png", "confusion_val.png", "confusion_test.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1]
    assert not any(k.startswith("test") for h in history for k in h)  # test never reaches the logs
    assert {"val_acc_audio", "val_acc_video", "ogm_coeff_audio", "ogm_coeff_video"} <= set(history[0])
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,lr,train_loss")
    results = json.loads((run / "results.json").read_text())
    best = max(history, key=lambda h: (h["val_acc"], -h["val_loss"]))
    assert results["best_epoch"] == best["epoch"] == result.best_epoch
    assert results["val"]["acc"] == best["val_acc"]
    test = results["test"]
    assert test["n"] == 6 and sum(map(sum, test["confusion"])) == 6
    assert test["acc"] == pytest.approx(sum(test["confusion"][i][i] for i in range(6)) / 6)
    assert {"acc_audio", "acc_video", "f1_macro", "class_acc"} <= set(test)
    last = read_checkpoint(run / "last.pt")
    assert (last["epoch"], last["batch_in_epoch"], last["step"]) == (2, 0, 18)
    assert {"optimizer", "scheduler", "scaler", "rng", "state"} <= set(last)


def test_eval_of_the_best_checkpoint_reproduces_the_test_metrics(av_run, monkeypatch, capsys):
    cfg, result, _ = av_run
    args = ["eval", cfg.run_dir / "best.pt", "--split", "test", "--json", "--batch-size", "5"]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0
    metrics = json.loads(out)
    for key in ("acc", "f1_macro", "acc_audio", "acc_video", "confusion", "class_acc"):
        assert metrics[key] == result.test[key], key
    assert metrics["loss"] == pytest.approx(result.test["loss"], abs=1e-6)
    loaded = load_model(cfg.run_dir / "best.pt")
    assert loaded.config["model"]["fusion"] == "qk" and loaded.epoch == result.best_epoch + 1
    assert loaded.config["model"]["name"] == loaded.spec.name == "qkf_av_tiny"  # resolved, not None
    assert loaded.config["data"]["dir"] == str(cfg.data.dir) and loaded.config["dataset"] == "crema"


def test_train_and_eval_from_the_command_line(crema_cache, tmp_path, monkeypatch, capsys):
    args = ["train", "crema", "--modality", "audio", "--data", crema_cache, "--out", tmp_path]
    args += [*TINY_FLAGS, "--epochs", "1", "--name", "cli", "--progress", "lines"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert "epoch   1/1" in out and "test (best epoch 1, chosen on val)" in out
    code, out, _ = run_cli(["eval", tmp_path / "cli" / "best.pt", "--split", "val"], monkeypatch, capsys)
    assert code == 0 and "on val (6 clips)" in out

    # the same command again is refused; --resume of a finished run only re-tests; other settings are refused
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "already holds a run: pass --resume" in err and err.count("\n") == 1
    code, _, err = run_cli([*args, "--resume", "--lr", "1e-3"], monkeypatch, capsys)
    assert code == 2 and "was trained with other settings: optim.lr=0.002→0.001" in err
    code, out, _ = run_cli([*args, "--resume", "--workers", "1"], monkeypatch, capsys)
    assert code == 0 and "resumed" in out

    # a checkpoint whose optimiser was laid out differently (an older version) is refused in one line
    (tmp_path / "cli" / "results.json").unlink()
    ckpt = read_checkpoint(tmp_path / "cli" / "last.pt")
    groups = ckpt["optimizer"]["param_groups"]
    groups.append({**groups[0], "params": []})
    torch.save(ckpt, tmp_path / "cli" / "last.pt")
    code, _, err = run_cli([*args, "--resume"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1, err
    n = len(groups)
    assert f"holds an optimiser with {n} parameter groups, this version builds {n - 1}" in err


BAD = [
    (["--data", "{tmp}/missing"], "no such directory"),
    (["--data", "{tmp}"], "no index.json"),
    (["--data", "{audio_only}", "--modality", "av"], "holds no video"),
    (["--data", "{cache}", "--fusion", "film"], "model.fusion: unknown value 'film'"),
    (["--data", "{cache}", "--amp", "fp8"], "run.amp: unknown value 'fp8'"),
    (["--data", "{cache}", "--amp", "fp16"], "--amp fp16 needs a CUDA GPU"),
    (["--data", "{cache}", "--neuron", "hh"], "unknown neuron"),
    (["--data", "{cache}", "--modality", "audio", "--ogm-ge"], "--modality audio has one"),
    (["--data", "{cache}", "--batch-size", "0"], "data.batch_size: must be > 0"),
    (["--data", "{cache}", "--set", "optim.momentum=0.9"], "--set optim.momentum: unknown key"),
    (["--data", "{cache}", "--config", "{tmp}/none.yaml"], "no such file"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_exit_2(
    extra, message, crema_cache, crema_audio_only_cache, tmp_path, monkeypatch, capsys
):
    fill = {"tmp": tmp_path, "cache": crema_cache, "audio_only": crema_audio_only_cache}
    args = ["train", "crema", "--out", tmp_path / "runs", *TINY_FLAGS, *[a.format(**fill) for a in extra]]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2, (out, err)
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_eval_bad_input(av_run, crema_audio_only_cache, tmp_path, monkeypatch, capsys):
    cfg, _, _ = av_run
    best = cfg.run_dir / "best.pt"
    cases = [
        ([tmp_path / "nope.pt"], "no such file"),
        ([best, "--split", "dev"], "--split 'dev': choose one of train, val, test"),
        ([best, "--data", crema_audio_only_cache], "holds no video"),
    ]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    cases.append(([tmp_path / "junk.pt"], "not a readable checkpoint"))
    for args, message in cases:
        code, _, err = run_cli(["eval", *args], monkeypatch, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(
    crema_cache, tmp_path, monkeypatch, capsys
):
    # lr 1e18 with weight decay multiplies the weights by ~1e14 per step: finite for a step or two,
    # then the loss or the weights overflow. Checkpoints every step, so "last good" is the step before.
    args = [
        "train",
        "crema",
        "--modality",
        "audio",
        "--data",
        crema_cache,
        "--out",
        tmp_path,
        "--name",
        "nan",
    ]
    args += [*TINY_FLAGS, "--lr", "1e18", "--warmup-epochs", "0", "--checkpoint-every", "1"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "not finite" in err and f"(last good checkpoint: {tmp_path / 'nan' / 'last.pt'})" in err
    last = read_checkpoint(tmp_path / "nan" / "last.pt")
    step = int(err.split(" step ")[1].split(";")[0])
    assert last["step"] == step - 1  # either way: the state before the step that went wrong
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_bf16_autocast_trains_on_the_cpu_and_eval_uses_the_runs_precision(
    crema_cache, tmp_path, monkeypatch, capsys
):
    args = ["train", "crema", "--modality", "av", "--data", crema_cache, "--out", tmp_path, "--name", "bf16"]
    code, _, err = run_cli([*args, *TINY_FLAGS, "--epochs", "1", "--amp", "bf16"], monkeypatch, capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "bf16" / "results.json").read_text())
    code, out, _ = run_cli(["eval", tmp_path / "bf16" / "best.pt", "--json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["confusion"] == results["test"]["confusion"]
