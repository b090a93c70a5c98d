"""The energy loss term of energy-aware training (``qkf train --energy-weight / --energy-budget``).

Per training step, with E the batch's differentiable energy per sample (``estimator.py``) under the
chosen energy model of the profiler:

- penalty: loss += λ · E / E_ref, where E_ref is the estimate of the first training step (the
  untrained model, kept in the checkpoint). λ is therefore dimensionless and means the same for every
  energy model and model size: λ = 0.1 makes the initial energy cost 0.1 nats, so halving it is
  worth 0.05 nats of cross-entropy.
- budget B: loss += μ · (E / B − 1), and after the step μ ← max(0, μ + η · (Ē / B − 1)), Ē the
  global batch's mean estimate (reduced over ranks, so every rank holds the same μ). μ rises while
  the running estimate is over budget and decays back to 0 once it is under (projected gradient
  ascent on the Lagrange multiplier, η = ``energy.multiplier_lr``). μ is in the checkpoint: a resumed
  run continues with the same value bit for bit.

Before epoch ``start_epoch`` (``energy.start_epoch``, a warm-up) the estimate is logged but not in the
loss, and μ stays 0; the penalty's E_ref is then the first step from that epoch. With a budget, the
best epoch is chosen among the epochs whose validation energy is within it (``feasible``; all epochs if
none is): a constrained run never reports an epoch over budget while one within it exists.

Logged: ``energy_uJ`` and ``energy_multiplier`` per step (the epoch record gets their per-sample
means as ``train_*``); each evaluation split's energy per sample as ``val_energy_uJ`` (and
``energy_uJ`` in results.json's ``val`` / ``test``): the same records and energy function as ``qkf
profile`` on that split, so the two agree (tested); ``energy_multiplier`` and ``energy_budget_uJ``
at each epoch's end. The training layer never imports this module: ``qkf train`` (and ``qkf
sweep``) pass :func:`energy_terms` to ``train(..., terms=)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from qkf_snn.hardware.profile.estimator import EnergyEstimator, check_energy_model
from qkf_snn.training import distributed
from qkf_snn.training.terms import LossTerm

PJ_PER_UJ = 1e6


def _forward_all(model: nn.Module, batch: Any) -> Any:
    return model.forward_all(batch)


class EnergyTerm(LossTerm):
    name = "energy"

    def __init__(
        self,
        energy_model: str,
        *,
        weight: float = 0.0,
        budget_pj: float | None = None,
        multiplier_lr: float = 0.05,
        start_epoch: int = 0,
        forward: Callable[[nn.Module, Any], Any] = _forward_all,
    ) -> None:
        self.energy_model = check_energy_model(energy_model)
        self.weight, self.budget_pj, self.multiplier_lr = weight, budget_pj, multiplier_lr
        self.start_epoch = start_epoch
        self.forward = forward
        self.epoch = 0  # the epoch being trained (from end_of_epoch; in the state)
        self.multiplier = 0.0
        if budget_pj is not None:
            self.constraint = f"validation energy <= {budget_pj / PJ_PER_UJ:g} uJ per sample ({energy_model})"
        self.reference_pj: float | None = None
        self.estimator: EnergyEstimator | None = None
        self.model: nn.Module | None = None

    def attach(self, model: nn.Module) -> None:
        self.model = model
        self.estimator = EnergyEstimator(model, self.energy_model, forward=self.forward)
        self.estimator.attach()

    def _calibrate(self, batch: Mapping[str, Any] | None) -> EnergyEstimator:
        est = self.estimator
        assert est is not None, "attach(model) first"
        if not est.calibrated:
            # The structure does not depend on the values: the first training batch, else (an
            # evaluation before any step, e.g. a resumed run that only tests) the model's example.
            if batch is None:
                batch = self.model.example_batch(1)
            est.calibrate({k: v for k, v in batch.items() if k != "label"})
        return est

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        energy = self._calibrate(batch).energy()  # pJ per sample of this rank's batch
        n = int(batch["label"].shape[0])
        value = float(energy.detach())
        reduced = distributed.all_reduce_sum(
            torch.tensor([value * n, n], dtype=torch.float64, device=batch["label"].device)
        )
        mean = float(reduced[0] / reduced[1])  # the global batch's estimate: the same on every rank
        loss = energy.new_zeros(())
        scalars = {"energy_uJ": value / PJ_PER_UJ}
        if self.epoch < self.start_epoch:  # warm-up: logged, not trained on
            if self.budget_pj is not None:
                scalars["energy_multiplier"] = 0.0
            return loss, scalars
        if self.weight > 0:
            if self.reference_pj is None:
                self.reference_pj = mean
            loss = loss + self.weight * energy / self.reference_pj
        if self.budget_pj is not None:
            used = self.multiplier
            loss = loss + used * (energy / self.budget_pj - 1.0)
            self.multiplier = max(0.0, used + self.multiplier_lr * (mean / self.budget_pj - 1.0))
            scalars["energy_multiplier"] = used
        return loss, scalars

    def evaluate_begin(self) -> None:
        self.estimator.begin_split()

    def evaluate_end(self) -> dict[str, float]:
        est = self.estimator
        est.end_split()
        sums = est.split_sums()
        if not sums:
            return {}
        est = self._calibrate(None)
        # Over ranks: every rank evaluated its share of the split; sum the layers' totals.
        keys = [(name, k) for name in sorted(sums) for k in sorted(sums[name])]
        flat = torch.tensor([sums[n][k] for n, k in keys], dtype=torch.float64)
        device = next(self.model.parameters()).device
        flat = distributed.all_reduce_sum(flat.to(device)).cpu().tolist()
        for (name, key), value in zip(keys, flat, strict=True):
            sums[name][key] = value
        return {"energy_uJ": est.split_energy(sums) / PJ_PER_UJ}

    def end_of_epoch(self, metrics: dict[str, Any]) -> dict[str, float]:
        self.epoch = int(metrics["epoch"]) + 1  # the record of the epoch just finished
        if self.budget_pj is None:
            return {}
        return {"energy_multiplier": self.multiplier, "energy_budget_uJ": self.budget_pj / PJ_PER_UJ}

    def feasible(self, val: Mapping[str, Any]) -> bool | None:
        if self.budget_pj is None:
            return None
        return val["energy_uJ"] <= self.budget_pj / PJ_PER_UJ

    def state_dict(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier, "reference_pj": self.reference_pj, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.multiplier = float(state["multiplier"])
        self.reference_pj = None if state["reference_pj"] is None else float(state["reference_pj"])
        self.epoch = int(state.get("epoch", 0))  # before warm-ups: only start_epoch 0 existed


def energy_terms(cfg: Any) -> list[LossTerm]:
    """The loss terms ``cfg.energy`` asks for: none when the weight is 0 and there is no budget."""
    check_energy_model(cfg.energy.model)
    e = cfg.energy
    if not e.active:
        return []
    return [
        EnergyTerm(
            e.model,
            weight=e.weight,
            budget_pj=e.budget_pj,
            multiplier_lr=e.multiplier_lr,
            start_epoch=e.start_epoch,
        )
    ]
