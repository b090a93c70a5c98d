"""Loss terms: objectives the loop adds to the classification loss, one object per term.

Per training step the loop's objective is ``CE(fused logits) + Σ term(outputs, batch)[0]``, added in
the order of the terms (built-in ones, from ``build.TERM_FACTORIES``, first; then those passed to
``train(..., terms=)``). A term is called at these points:

    attach(model)                once, after the model is built (register forward hooks here)
    __call__(outputs, batch)     every training step: (its loss, already weighted; scalars to log)
    evaluate_begin/_end()        around each evaluation pass (validation every epoch, test once); the
                                 scalars ``evaluate_end`` returns join that split's metrics (``val_<key>``
                                 in the epoch record, ``val``/``test`` in results.json)
    end_of_epoch(record)         after validation, with the epoch record (``train_*``, ``val_*``): update
                                 multipliers here; the scalars it returns join the record
    feasible(val)                after validation: does the model meet the term's constraint (None: the
                                 term has none)? The best epoch is chosen on validation accuracy among
                                 the epochs that meet every constraint, over all epochs if none does
    state_dict/load_state_dict   saved in last.pt under ``terms[name]``, so ``--resume`` restores it
                                 exactly (also mid-epoch)

``outputs`` is the training forward's dict (``logits``; AV models also ``audio``, ``video`` and the
``*_part`` shares); ``batch`` maps each modality to its input and ``"label"`` to the labels.

Scalars are logged under the keys the term gives them (name them after the term, e.g. ``energy_uJ``);
a key the loop or another term already uses is an error. A step's scalars go to steps.jsonl, and their
mean over the epoch's samples to the epoch record as ``train_<key>``; epoch records also reach
metrics.csv and TensorBoard, and the scalars of ``end_of_epoch`` get a panel of curves.png. Under DDP
the loop sums the step scalars over ranks; ``evaluate_end`` must return values already reduced over ranks
(``distributed.all_reduce_sum``), and ``end_of_epoch`` sees reduced metrics, so every rank updates alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qkf_snn.errors import UserError

# What the loop logs for every step itself: a term's step scalars may not use these keys.
STEP_KEYS = ("step", "epoch", "loss", "lr", "ce", "ogm_coeff_audio", "ogm_coeff_video", "ogm_ratio_audio")


class LossTerm:
    """Base class (and protocol) of a loss term; every hook but ``__call__`` defaults to nothing."""

    name: str = "term"  # unique among a run's terms; the key of its state in last.pt

    def attach(self, model: nn.Module) -> None:
        """Called once with the bare model (not the DDP wrapper), on its device."""

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def evaluate_begin(self) -> None:
        """An evaluation pass (model in eval mode, no gradients) starts."""

    def evaluate_end(self) -> dict[str, float]:
        return {}

    def end_of_epoch(self, metrics: dict[str, Any]) -> dict[str, float]:
        return {}

    # what ``feasible`` checks, in words, for the selection protocol in results.json (None: nothing)
    constraint: str | None = None

    def feasible(self, val: Mapping[str, Any]) -> bool | None:
        """Whether the validated model meets this term's constraint (``val``: the validation metrics,
        with this term's ``evaluate_end`` scalars); None when the term constrains nothing."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors and built-in types only: weights_only)."""


def objective(
    outputs: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    terms: Sequence[LossTerm],
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """A training step's loss: CE of the fused logits, then each term's loss added in order. Returns
    (loss, the CE alone, the terms' step scalars)."""
    ce = F.cross_entropy(outputs["logits"].float(), batch["label"], label_smoothing=label_smoothing)
    loss, logged = ce, dict.fromkeys(STEP_KEYS)
    for term in terms:
        part, scalars = term(outputs, batch)
        merge(logged, scalars, f"loss term {term.name!r}")
        loss = loss + part
    return loss, ce, {k: v for k, v in logged.items() if k not in STEP_KEYS}


def feasible(terms: Sequence[LossTerm], val: Mapping[str, Any]) -> bool | None:
    """Whether ``val`` meets every term's constraint; None when no term has one."""
    verdicts = [v for v in (t.feasible(val) for t in terms) if v is not None]
    return all(verdicts) if verdicts else None


def constraints(terms: Sequence[LossTerm]) -> list[str]:
    """The terms' constraints in words (for the selection protocol)."""
    return [t.constraint for t in terms if t.constraint]


def check_names(terms: Sequence[LossTerm]) -> None:
    names = [t.name for t in terms]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"loss terms must have distinct names; {', '.join(doubled)} appear twice")


def merge(into: dict[str, Any], scalars: Mapping[str, Any], owner: str, prefix: str = "") -> None:
    """Add a term's scalars (as floats) to a record under ``prefix + key``; refuse to overwrite."""
    for key, value in scalars.items():
        full = prefix + key
        if full in into:
            raise ValueError(f"{owner}: scalar {full!r} is already in the record")
        into[full] = float(value)


def states(terms: Sequence[LossTerm]) -> dict[str, dict[str, Any]]:
    """What last.pt stores under ``"terms"``."""
    return {t.name: t.state_dict() for t in terms}


def load_states(terms: Sequence[LossTerm], saved: Mapping[str, Any] | None, path: Path) -> None:
    """Restore each term's state. A checkpoint from before loss terms (``saved`` None) resumes only
    runs whose terms keep no state; otherwise the checkpoint must hold exactly this run's terms."""
    if saved is None:
        saved = {t.name: {} for t in terms if not t.state_dict()}
    names, held = [t.name for t in terms], list(saved)
    if sorted(names) != sorted(held):
        raise UserError(
            f"--resume: checkpoint {path} was trained with loss terms [{', '.join(sorted(held))}], "
            f"this run has [{', '.join(sorted(names))}]"
        )
    for term in terms:
        term.load_state_dict(saved[term.name])
