"""The loss-term hook, shown with a toy term registered from this file: its loss is part of the
objective (and changes training), its scalars reach the step log, the epoch records, metrics.csv and
results.json, and its state survives a crash and ``--resume`` bit for bit."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.training import compose
from qkf_snn.training.checkpoint import read_checkpoint
from qkf_snn.training.loop import train
from qkf_snn.training.terms import LossTerm

from .conftest import tiny_overrides

# audio, 36 train clips in batches of 4: 9 steps per epoch; a mid-epoch checkpoint every 4 steps
SETTINGS = {"run.checkpoint_every": 4, "run.log_every": 1}


class _Crash(Exception):
    pass


class ToyTerm(LossTerm):
    """``weight · multiplier · mean(logits²)``. The multiplier follows the validation accuracy each
    epoch (a Lagrange-multiplier-like state), ``steps`` counts calls (state that changes mid-epoch),
    and a forward hook on the head counts the clips of each evaluation pass."""

    name = "toy"

    def __init__(self, weight: float, crash_at: int | None = None) -> None:
        self.weight, self.crash_at = weight, crash_at
        self.multiplier = torch.tensor(1.0, dtype=torch.float64)
        self.steps, self.evaluating, self.eval_clips = 0, False, 0
        self.attached: list[nn.Module] = []

    def attach(self, model: nn.Module) -> None:
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        head.register_forward_hook(self._count)
        self.attached.append(model)

    def _count(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.evaluating:
            self.eval_clips += output.shape[1]  # [T, B, classes]

    def __call__(self, outputs, batch):
        self.steps += 1
        if self.steps == self.crash_at:
            raise _Crash
        penalty = outputs["logits"].float().pow(2).mean()
        loss = self.weight * float(self.multiplier) * penalty
        return loss, {"toy_loss": loss.item(), "toy_penalty": penalty.item()}

    def evaluate_begin(self) -> None:
        self.evaluating, self.eval_clips = True, 0

    def evaluate_end(self) -> dict[str, float]:
        self.evaluating = False
        return {"toy_clips": self.eval_clips}

    def end_of_epoch(self, metrics):
        self.multiplier = self.multiplier * (1.5 - metrics["val_acc"]) + metrics["train_toy_penalty"] / 7
        return {"toy_multiplier": float(self.multiplier), "toy_steps": self.steps}

    def state_dict(self):
        return {"multiplier": self.multiplier, "steps": self.steps}

    def load_state_dict(self, state):
        self.multiplier, self.steps = state["multiplier"].clone(), int(state["steps"])


def _config(cache, out, name):
    return compose("crema", "audio", overrides=tiny_overrides(cache, out, **SETTINGS, **{"run.name": name}))


def _records(run, name="metrics.jsonl"):
    records = [json.loads(line) for line in (run / name).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time_s", "cpu_s")} for r in records]


@pytest.fixture(scope="module")
def runs(crema_cache, tmp_path_factory):
    """A run with the toy term, the same run crashed in epoch 2 and resumed, and one without it."""
    out = tmp_path_factory.mktemp("terms")
    threads = torch.get_num_threads()
    try:
        straight = ToyTerm(0.05)
        train(_config(crema_cache, out, "toy"), terms=[straight])
        with pytest.raises(_Crash):  # step 15: the last checkpoint was written after step 12
            train(_config(crema_cache, out, "resumed"), terms=[ToyTerm(0.05, crash_at=15)])
        crashed = read_checkpoint(out / "resumed" / "last.pt")
        resumed = ToyTerm(0.05)
        train(_config(crema_cache, out, "resumed"), resume=True, terms=[resumed])
        train(_config(crema_cache, out, "plain"))
    finally:
        torch.set_num_threads(threads)
    return out, straight, resumed, crashed


def test_the_terms_loss_is_added_to_the_objective_and_changes_training(runs):
    out, term, _, _ = runs
    assert len(term.attached) == 1 and term.steps == 18
    for step in _records(out / "toy", "steps.jsonl"):
        assert step["loss"] == pytest.approx(step["ce"] + step["toy_loss"], rel=1e-6)
        assert step["toy_loss"] > 0
    toy, plain = (read_checkpoint(out / name / "last.pt")["model"] for name in ("toy", "plain"))
    assert any(not torch.equal(toy[k], plain[k]) for k in plain)
    assert all("toy_loss" not in r for r in _records(out / "plain", "steps.jsonl"))


def test_the_terms_scalars_reach_the_epoch_records_and_results(runs):
    out, term, _, _ = runs
    history = _records(out / "toy")
    steps = _records(out / "toy", "steps.jsonl")
    for epoch, record in enumerate(history):
        mine = [s for s in steps if s["epoch"] == epoch]
        # per-sample means over the epoch (every batch holds 4 clips)
        assert record["train_toy_penalty"] == pytest.approx(sum(s["toy_penalty"] for s in mine) / len(mine))
        assert record["val_toy_clips"] == 6.0  # the evaluation pass over the 6 validation clips
        assert record["toy_steps"] == 9 * (epoch + 1)
    assert history[-1]["toy_multiplier"] == float(term.multiplier)
    assert history[1]["toy_multiplier"] != history[0]["toy_multiplier"]
    assert "toy_multiplier" in (out / "toy" / "metrics.csv").read_text().splitlines()[0].split(",")
    results = json.loads((out / "toy" / "results.json").read_text())
    assert results["test"]["toy_clips"] == 6.0 and results["val"]["toy_clips"] == 6.0
    assert results["loss_terms"] == ["toy"]
    assert "loss_terms" not in json.loads((out / "plain" / "results.json").read_text())


def test_a_crashed_run_resumes_with_the_terms_state_bit_for_bit(runs):
    out, straight, resumed, crashed = runs
    assert (crashed["epoch"], crashed["batch_in_epoch"], crashed["step"]) == (1, 3, 12)
    assert crashed["terms"]["toy"]["steps"] == 12  # saved mid-epoch, after the epoch-1 update
    assert crashed["terms"]["toy"]["multiplier"] == _records(out / "toy")[0]["toy_multiplier"]
    assert _records(out / "resumed") == _records(out / "toy")
    assert _records(out / "resumed", "steps.jsonl") == _records(out / "toy", "steps.jsonl")
    a, b = (json.loads((out / name / "results.json").read_text()) for name in ("resumed", "toy"))
    assert a["val"] == b["val"] and a["test"] == b["test"]
    last = {name: read_checkpoint(out / name / "last.pt") for name in ("resumed", "toy")}
    assert torch.equal(
        last["resumed"]["terms"]["toy"]["multiplier"], last["toy"]["terms"]["toy"]["multiplier"]
    )
    assert torch.equal(resumed.multiplier, straight.multiplier) and resumed.steps == straight.steps == 18
    assert all(torch.equal(last["resumed"]["model"][k], v) for k, v in last["toy"]["model"].items())


def test_resuming_with_other_terms_is_refused_in_one_line(runs, crema_cache):
    out, _, _, _ = runs
    with pytest.raises(UserError, match=r"trained with loss terms \[toy\], this run has \[\]"):
        train(_config(crema_cache, out, "toy"), resume=True)
    with pytest.raises(UserError, match=r"trained with loss terms \[\], this run has \[toy\]"):
        train(_config(crema_cache, out, "plain"), resume=True, terms=[ToyTerm(0.05)])


def test_terms_need_distinct_names_and_keys(crema_cache, tmp_path):
    with pytest.raises(ValueError, match="toy appear twice"):
        train(_config(crema_cache, tmp_path, "twice"), terms=[ToyTerm(0.1), ToyTerm(0.2)])

    class Clash(ToyTerm):
        name = "clash"

        def __call__(self, outputs, batch):
            loss, _ = super().__call__(outputs, batch)
            return loss, {"ce": 0.0}  # the fused CE's key: refused rather than overwritten

    with pytest.raises(ValueError, match="loss term 'clash': scalar 'ce' is already in the record"):
        train(_config(crema_cache, tmp_path, "clash"), terms=[Clash(0.1)])


class _NaNGradient(torch.autograd.Function):
    """0 forward, NaN backward: a finite loss whose gradient is not (a surrogate's overflow did this)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.sum() * 0.0

    @staticmethod
    def backward(ctx, grad):
        return torch.full(ctx.shape, float("nan"))


class NaNGradientTerm(LossTerm):
    name = "nan_gradient"

    def __init__(self, at_step: int) -> None:
        self.at_step, self.steps = at_step, 0

    def __call__(self, outputs, batch):
        self.steps += 1
        if self.steps != self.at_step:
            return outputs["logits"].new_zeros(()), {}
        return _NaNGradient.apply(outputs["logits"].float()), {}


@pytest.mark.parametrize("grad_clip", (1.0, 0.0))
def test_a_finite_loss_with_non_finite_gradients_stops_before_the_update(crema_cache, tmp_path, grad_clip):
    """The loss check alone let NaN gradients into the weights; the next step's loss was then NaN and
    its message blamed the wrong step. Now step 6 stops before its update, last.pt (step 4) stays."""
    from qkf_snn.training.loop import TrainingDiverged

    cfg = compose(
        "crema",
        "audio",
        overrides=tiny_overrides(
            crema_cache, tmp_path, **SETTINGS, **{"run.name": "nan", "optim.grad_clip": grad_clip}
        ),
    )
    threads = torch.get_num_threads()
    try:
        with pytest.raises(TrainingDiverged) as err:
            train(cfg, terms=[NaNGradientTerm(at_step=6)])
    finally:
        torch.set_num_threads(threads)
    last = tmp_path / "nan" / "last.pt"
    assert str(err.value) == (
        "gradient norm (nan) not finite at step 6; stopped before the update "
        f"(last good checkpoint: {last}); try a lower --lr or --grad-clip"
    )
    saved = read_checkpoint(last)
    assert saved["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


class Constrained(LossTerm):
    """No loss; ``feasible`` answers from a fixed list, one verdict per validation."""

    name = "constrained"
    constraint = "the toy constraint"

    def __init__(self, verdicts: list[bool]) -> None:
        self.verdicts, self.asked = list(verdicts), 0

    def __call__(self, outputs, batch):
        return outputs["logits"].new_zeros(()), {}

    def feasible(self, val):
        self.asked += 1
        return self.verdicts[self.asked - 1]


def _three_epochs(cache, out, name, terms):
    cfg = compose(
        "crema", "audio", overrides=tiny_overrides(cache, out, **{"run.name": name, "optim.epochs": 3})
    )
    threads = torch.get_num_threads()
    try:
        return train(cfg, terms=terms)
    finally:
        torch.set_num_threads(threads)


def test_the_best_epoch_is_chosen_among_the_epochs_that_meet_the_constraints(crema_cache, tmp_path):
    """Selection on validation accuracy, first among feasible epochs: with the constraint met only in
    an epoch the plain run did not choose, that epoch is chosen; met nowhere, the choice is the plain
    one, and results.json says so (the terminal lines: tests/training/test_energy_training.py)."""
    plain = _three_epochs(crema_cache, tmp_path, "plain", [])
    accs = [r["val_acc"] for r in _records(tmp_path / "plain")]
    target = next(i for i in range(3) if i != plain.best_epoch)
    verdicts = [i == target for i in range(3)]
    chosen = _three_epochs(crema_cache, tmp_path, "chosen", [Constrained(verdicts)])
    assert chosen.best_epoch == target != plain.best_epoch and chosen.val["acc"] == accs[target]
    records = _records(tmp_path / "chosen")
    assert [r["feasible"] for r in records] == verdicts
    assert [r["val_acc"] for r in records] == accs  # the term adds no loss: the same training
    assert [r["best"] for r in records] == [i <= target and (i == target or i == 0) for i in range(3)]
    results = json.loads((tmp_path / "chosen" / "results.json").read_text())
    assert results["best_feasible"] is True and results["best_epoch"] == target
    assert "among the epochs meeting the toy constraint (all epochs if none does)" in results["protocol"]
    nowhere = _three_epochs(crema_cache, tmp_path, "nowhere", [Constrained([False] * 3)])
    assert nowhere.best_epoch == plain.best_epoch and nowhere.val == plain.val
    assert json.loads((tmp_path / "nowhere" / "results.json").read_text())["best_feasible"] is False
    assert "feasible" not in _records(tmp_path / "plain")[0]
    assert "best_feasible" not in json.loads((tmp_path / "plain" / "results.json").read_text())
