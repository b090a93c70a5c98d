"""The training loop, top to bottom: processes → data → model → optimiser → resume → epochs
(train, validate, select on validation, early stop, checkpoint) → test once with the best model.

:func:`train` reads like nanoGPT's train.py: ``_open`` and ``_build`` set a run up, then each epoch is
:func:`train_epoch` (a :func:`train_step` per batch) and :func:`end_of_epoch` (validate, log, select,
checkpoint), and :func:`test_best` tests the checkpoint chosen on validation once. The pieces share
one :class:`Run`.

Exact resume: ``last.pt`` is written at the end of every epoch and every ``run.checkpoint_every``
steps with the model, optimiser, scheduler, scaler, RNG states and the position inside the epoch.
Data order and augmentation depend only on (seed, epoch, position) (see data.py) and OGM-GE's noise
on (seed, step), so a run killed at any point and resumed takes the same steps as one never killed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qkf_snn.errors import RunStopped, UserError
from qkf_snn.io import FolderLock, atomic_write_bytes, check_destination, remove_stale_temps, writing
from qkf_snn.models import recalibrate_bn
from qkf_snn.models.quant import enable_qat
from qkf_snn.training import determinism, distributed
from qkf_snn.training import terms as loss_terms
from qkf_snn.training.balancing import Modulation, apply_ogm_ge, ogm_active, trains_probe_heads
from qkf_snn.training.build import DataInfo, ModelSpec, check_model_fits, model_spec
from qkf_snn.training.build import loss_terms as builtin_terms
from qkf_snn.training.checkpoint import (
    TrainState,
    checkpoint_payload,
    init_from,
    load_state,
    read_checkpoint,
    restore,
    save_checkpoint,
)
from qkf_snn.training.config import TrainConfig, save_config
from qkf_snn.training.data import build_dataset, make_loader, per_rank_batch, to_device
from qkf_snn.training.logging import RunLogger
from qkf_snn.training.metrics import ClassificationMetrics
from qkf_snn.training.optim import WarmupCosine, make_optimizer
from qkf_snn.training.plots import plot_confusion, plot_curves
from qkf_snn.training.progress import EpochProgress
from qkf_snn.training.terms import LossTerm

# Settings that may change between a run and its resumption: where things are and how they are shown.
RESUMABLE_CHANGES = {
    "recipe", "data.dir", "data.workers", "run.device", "run.out", "run.name",
    "run.checkpoint_every", "run.log_every", "run.progress", "run.threads",
}  # fmt: skip


class TrainingDiverged(RunStopped):
    """The loss became NaN or Inf; the message names the last good checkpoint."""

    exit_code = 1


class TrainingInterrupted(RunStopped):
    """SIGTERM/SIGUSR1 (e.g. SLURM preemption) arrived; last.pt holds the state to resume from."""

    exit_code = 3  # distinct from a failure, so a job script can requeue


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    val: dict[str, Any]  # validation metrics of the best epoch
    test: dict[str, Any]  # test metrics of the best checkpoint, evaluated once
    epochs_run: int
    stopped_early: bool
    model: nn.Module | None = None  # the trained model with the best checkpoint's weights (eval mode)


@dataclass
class Loaders:
    train: Any
    val: Any
    test: Any
    calib: Any  # a fixed random subset of train clips, unaugmented, for exact BN statistics
    batch: int  # train clips per step on this rank


@dataclass
class Run:
    """What the pieces of the loop share: settings, data, model, optimiser, loss terms, progress."""

    cfg: TrainConfig
    dist: distributed.DistInfo
    show: EpochProgress
    spec: ModelSpec
    info: DataInfo
    data: Loaders
    model: nn.Module  # the model itself: checkpoints, evaluation, OGM-GE
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    autocast: Any  # a context-manager factory (mixed_precision)
    amp: str
    terms: list[LossTerm]
    state: TrainState
    step_model: nn.Module | None = None  # the training forward, DDP-wrapped under torchrun
    logger: RunLogger | None = None
    stop: _StopSignals | None = None
    numerics: dict[str, Any] | None = None  # determinism.environment() at the start, for results.json

    @property
    def last_path(self) -> Path:
        return self.cfg.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.cfg.run_dir / "best.pt"


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
    terms: Sequence[LossTerm] = (),
) -> TrainResult:
    """Train ``cfg``; under torchrun every process calls this and rank 0 does all file I/O. ``terms``
    are added to the objective after the built-in ones (see terms.py)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    determinism.setup(cfg.run.threads, cfg.run.deterministic, cfg.run.cpu_isa)
    check_destination(cfg.run_dir, "run directory", "dir")
    dist = distributed.setup(cfg.run.device)
    # One writer per run directory for the life of the run (a second run into it is refused).
    lock = FolderLock(cfg.run_dir, "run directory", "wait for that run to end, or choose another --name")
    try:
        with writing(cfg.run_dir):
            return _train(cfg, dist, lock, resume=resume, overwrite=overwrite, console=console, terms=terms)
    finally:
        lock.release()
        distributed.teardown()
        torch.use_deterministic_algorithms(was_deterministic)  # a process-wide switch: leave it as found


def _train(
    cfg: TrainConfig,
    dist: distributed.DistInfo,
    lock: FolderLock,
    *,
    resume: bool,
    overwrite: bool,
    console: Console | None,
    terms: Sequence[LossTerm],
) -> TrainResult:
    show = EpochProgress(cfg.run.progress, enabled=dist.is_main, console=console)
    ckpt = _open(cfg, resume, overwrite, show)  # nothing is written until the model is built
    # fine-tuning (--resume-from) starts from another run's weights, unless resuming this run
    run = _build(cfg, dist, show, terms, init=cfg.run.resume_from if ckpt is None else None)
    if ckpt is not None:
        run.state = restore(ckpt, run.last_path, model=run.model, optimizer=run.optimizer,
                            scheduler=run.scheduler, scaler=run.scaler, terms=run.terms)  # fmt: skip
        s = run.state
        show.print(f"resumed {run.last_path} at epoch {s.epoch + 1}, batch {s.batch_in_epoch}, step {s.step}")
    if dist.is_main:
        _claim(cfg, lock, fresh=ckpt is None, overwrite=overwrite)
    at = (run.state.epoch, run.state.step) if ckpt is not None else (None, None)
    run.logger = RunLogger(cfg.run_dir, enabled=dist.is_main, resume_epoch=at[0], resume_step=at[1])
    _start(run)

    with run.stop, contextlib.closing(run.logger), contextlib.closing(show):
        while run.state.epoch < cfg.optim.epochs and not run.state.stopped_early:
            started = time.perf_counter(), time.process_time()
            train_epoch(run)
            end_of_epoch(run, started)
    return test_best(run)


# --- setting a run up ----------------------------------------------------------------------------------


def _open(cfg: TrainConfig, resume: bool, overwrite: bool, show: EpochProgress) -> dict[str, Any] | None:
    """The checkpoint to resume from, None to start fresh, or a refusal to touch an existing run."""
    last_path = cfg.run_dir / "last.pt"
    if resume and last_path.is_file():
        ckpt = read_checkpoint(last_path)
        _check_resumable(cfg, ckpt, last_path)
        return ckpt
    if resume:
        show.print(f"--resume: no checkpoint in {cfg.run_dir} yet, starting from scratch")
    else:
        _refuse_existing_run(cfg.run_dir, overwrite)
    return None


def _claim(cfg: TrainConfig, lock: FolderLock, *, fresh: bool, overwrite: bool) -> None:
    """The run directory, once data, model and checkpoint are known to work: locked, then written."""
    lock.acquire()
    if fresh:
        _refuse_existing_run(cfg.run_dir, overwrite)  # again under the lock: a run may have ended
    remove_stale_temps(cfg.run_dir)
    if fresh:
        for stale in ("best.pt", "last.pt", "results.json"):
            (cfg.run_dir / stale).unlink(missing_ok=True)
    save_config(cfg, cfg.run_dir / "config.yaml")


def _build(
    cfg: TrainConfig,
    dist: distributed.DistInfo,
    show: EpochProgress,
    terms: Sequence[LossTerm],
    init: str | None = None,
) -> Run:
    """Seeds, precision, data, model (weights from checkpoint ``init`` if given), optimiser and
    schedule, loss terms: a run at step 0."""
    device, seed = dist.device, cfg.run.seed
    torch.manual_seed(seed)
    amp, autocast = mixed_precision(cfg.run.amp, device)
    train_ds = build_dataset(cfg, None, "train", augment=cfg.data.augment)
    val_ds, test_ds = build_dataset(cfg, None, "val"), build_dataset(cfg, None, "test")
    info = DataInfo.of(train_ds)
    batch = per_rank_batch(cfg.data.batch_size, dist.world_size)
    eval_batch = per_rank_batch(cfg.data.eval_batch_size or cfg.data.batch_size, dist.world_size)
    common = dict(seed=seed, workers=cfg.data.workers, rank=dist.rank, world_size=dist.world_size,
                  pin_memory=device.type == "cuda")  # fmt: skip
    data = Loaders(
        train=make_loader(train_ds, batch_size=batch, train=True, **common),
        val=make_loader(val_ds, batch_size=eval_batch, train=False, **common),
        test=make_loader(test_ds, batch_size=eval_batch, train=False, **common),
        calib=make_loader(build_dataset(cfg, None, "train"), batch_size=eval_batch, train=True, **common),
        batch=batch,
    )
    spec = model_spec(cfg, info)
    model = spec.build()
    check_model_fits(model, info, f"model {spec.name}")
    if init:
        init_from(model, init)
    if cfg.quant.spec is not None:  # QAT: fake-quantized BN-folded weights, BN frozen (models/quant.py)
        enable_qat(model, cfg.quant.spec)
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine.of(cfg, len(data.train)))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    terms = [*builtin_terms(cfg, model), *terms]
    loss_terms.check_names(terms)
    if cfg.energy.active and "energy" not in {t.name for t in terms}:  # never train without it silently
        raise UserError(
            "energy.weight / energy.budget need the energy loss term, which lives in the hardware layer: "
            "pass terms=qkf_snn.hardware.profile.term.energy_terms(cfg) to train() (qkf train does)"
        )
    for term in terms:
        term.attach(model)
    return Run(cfg, dist, show, spec, info, data, model, optimizer, scheduler, scaler, autocast, amp, terms,
               TrainState())  # fmt: skip


def _start(run: Run) -> None:
    """Wrap the training forward for DDP, catch stop signals, say what is trained on what."""
    cfg, model, device = run.cfg, run.model, run.dist.device
    # DDP wraps a module whose forward returns every output the loss needs (forward_all, and each
    # modality's share of the fused logits for OGM-GE), so gradient sync sees one forward call.
    run.step_model = _TrainForward(
        model, parts=len(model.modalities) > 1, probe=trains_probe_heads(cfg, model)
    )
    if run.dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        run.step_model = DistributedDataParallel(run.step_model, device_ids=ids)
    run.stop = _StopSignals()
    run.numerics = numerics = determinism.environment(cfg.run.cpu_isa)
    if numerics.get("cpu_isa_pinned") is False:
        run.show.print(
            f"run.cpu_isa {cfg.run.cpu_isa}: not in effect (CPU kernels {numerics['cpu_capability']}: this "
            "process ran tensor code before the run started); its numbers may differ from a pinned run's"
        )
    data, info = run.data, run.info
    run.show.print(
        f"training {run.spec.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{cfg.dataset} {cfg.modality}: {len(data.train.dataset)} train / {len(data.val.dataset)} val clips, "
        f"T={info.time_steps}, {len(data.train)} steps/epoch, {run.dist.world_size} process(es) on {device}, "
        f"amp {run.amp} → {cfg.run_dir}"
    )


# --- an epoch: steps, then validation, selection and checkpoints ---------------------------------------


def train_epoch(run: Run) -> None:
    """Train the rest of epoch ``state.epoch`` (all of it unless resumed mid-epoch)."""
    cfg, state = run.cfg, run.state
    run.data.train.sampler.set_epoch(state.epoch, start=state.batch_in_epoch * run.data.batch)
    run.step_model.train()
    run.show.start(state.epoch, cfg.optim.epochs, len(run.data.train), state.batch_in_epoch)
    for batch in run.data.train:
        stop = train_step(run, batch)
        if cfg.run.checkpoint_every and state.step % cfg.run.checkpoint_every == 0:
            save_last(run)
        if stop:
            run.show.stop()
            save_last(run)
            raise TrainingInterrupted(f"stopped by a signal; resume from {run.last_path} with --resume")
    run.show.stop()


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> bool:
    """One optimiser step on one batch, with its bookkeeping; True if a stop signal arrived."""
    cfg, state, model, device = run.cfg, run.state, run.model, run.dist.device
    modalities = model.modalities
    x, y = to_device(batch, modalities, device), batch["label"].to(device)
    with run.autocast():
        out = run.step_model(x)
    loss, ce, logged = loss_terms.objective(out, {**x, "label": y}, run.terms, cfg.optim.label_smoothing)
    # Stop before any update if the loss is not finite on any rank, or a signal came.
    flags = distributed.all_reduce_sum(
        torch.tensor([float(not torch.isfinite(loss)), run.stop.flag], device=device)
    )
    if flags[0] > 0:
        run.show.stop()
        raise TrainingDiverged(_diverged_message(f"loss ({loss.item()})", state, run.last_path))
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    mod = Modulation()
    if len(modalities) > 1 and ogm_active(cfg.balance, state.epoch):
        mod = apply_ogm_ge(
            model, out, y, cfg.balance, seed=cfg.run.seed, step=state.step, optimizer=run.optimizer
        )
    norm = None
    if cfg.optim.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    _check_gradients(run, norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    # bookkeeping: position, this rank's running sums, logs
    state.step += 1
    state.batch_in_epoch += 1
    n, loss_value, ce_value = y.numel(), loss.item(), ce.item()
    state.loss_sum += loss_value * n
    state.ce_sum += ce_value * n
    for key, value in logged.items() if state.term_sums is not None else ():
        state.term_sums[key] = state.term_sums.get(key, 0.0) + value * n
    state.correct += int((out["logits"].argmax(-1) == y).sum())
    state.seen += n
    state.coeff_sums.add(mod.coeff_audio, mod.coeff_video)
    run.show.update(loss_value, state.correct / state.seen)
    if state.step % cfg.run.log_every == 0:
        record = {"step": state.step, "epoch": state.epoch, "loss": loss_value,
                  "lr": run.scheduler.get_last_lr()[0], "ce": ce_value, **logged}  # fmt: skip
        if len(modalities) > 1 and cfg.balance.ogm_ge:
            record.update(ogm_coeff_audio=mod.coeff_audio, ogm_coeff_video=mod.coeff_video,
                          ogm_ratio_audio=mod.ratio_audio)  # fmt: skip
        run.logger.step(record)
    return flags[1] > 0


def _check_gradients(run: Run, norm: torch.Tensor | None) -> None:
    """Stop before the update if the gradients are not finite (``norm``: their total norm, if known).

    A finite loss can still give non-finite gradients (a surrogate's overflow, a 0/0 in a loss term).
    fp16's GradScaler skips such steps itself, by design. DDP has averaged the gradients, so every
    rank sees the same norm and stops at the same step."""
    if run.scaler.is_enabled():
        return
    if norm is None:
        norm = nn.utils.get_total_norm([p.grad for p in run.model.parameters() if p.grad is not None])
    if not torch.isfinite(norm):
        run.show.stop()
        raise TrainingDiverged(_diverged_message(f"gradient norm ({norm.item()})", run.state, run.last_path))


def end_of_epoch(run: Run, started: tuple[float, float]) -> None:
    """Validate (with exact BN statistics), log the epoch, select on validation, write last.pt."""
    cfg, state, model = run.cfg, run.state, run.model
    sums = _epoch_sums(run)  # before anything else: every rank reduces in the same order
    if cfg.run.bn_recalibration and cfg.quant.spec is None:  # QAT freezes BN: nothing to redo
        run.data.calib.sampler.set_epoch(0)
        calib = itertools.islice(run.data.calib, cfg.run.bn_recalibration)
        recalibrate_bn(model, (to_device(b, model.modalities, run.dist.device) for b in calib))
    distributed.broadcast_buffers(model)  # BN statistics of rank 0 on every rank
    val = evaluate(model, run.data.val, run.info.num_classes, model.modalities, run.dist.device, run.autocast,
                   run.terms)  # fmt: skip
    # Chosen on validation accuracy (ties: lower loss), first among the epochs that meet the loss
    # terms' constraints (an energy budget), so a constrained run never picks an epoch over budget
    # while one within it exists.
    meets = loss_terms.feasible(run.terms, val)
    ok = meets is not False
    improved = (ok, val["acc"], -val["loss"]) > (state.best_feasible, state.best_acc, -state.best_loss)
    record, plotted = _epoch_record(run, sums, val, improved, started)
    if meets is not None:
        record["feasible"] = meets
    state.next_epoch()
    if improved:
        state.best_epoch, state.bad_epochs = record["epoch"], 0
        state.best_acc, state.best_loss, state.best_feasible = val["acc"], val["loss"], ok
        if run.dist.is_main:
            save_checkpoint(run.best_path, _payload(run, "best", val))
    else:
        state.bad_epochs += 1
    state.stopped_early = bool(cfg.run.patience) and state.bad_epochs >= cfg.run.patience
    state.history.append(record)
    run.logger.epoch(record)
    run.show.epoch_line(record, cfg.optim.epochs)
    if run.dist.is_main:
        plot_curves(state.history, cfg.run_dir / "curves.png", f"{cfg.run_name}", plotted)
    save_last(run)
    if state.stopped_early:
        run.show.print(f"early stop: no better validation accuracy for {cfg.run.patience} epochs")


def _epoch_sums(run: Run) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This epoch's training sums over every rank: [loss, correct, seen, CE], and the terms' scalars."""
    s = run.state
    keys = sorted(s.term_sums or {})
    values = [s.loss_sum, s.correct, s.seen, s.ce_sum, *(s.term_sums[k] for k in keys)]
    reduced = distributed.all_reduce_sum(torch.tensor(values, dtype=torch.float64, device=run.dist.device))
    return reduced[:4], dict(zip(keys, reduced[4:], strict=True))


def _epoch_record(
    run: Run,
    sums: tuple[torch.Tensor, dict],
    val: dict[str, Any],
    improved: bool,
    started: tuple[float, float],
) -> tuple[dict[str, Any], list[str]]:
    """The epoch's line of metrics.jsonl, and the keys the loss terms want plotted."""
    state, (base, term_sums) = run.state, sums
    seen = max(base[2], 1)
    record = {
        "epoch": state.epoch, "step": state.step, "lr": run.scheduler.get_last_lr()[0],
        "train_loss": float(base[0] / seen), "train_ce": float(base[3] / seen),
        "train_acc": float(base[1] / seen),
        "val_loss": val["loss"], "val_acc": val["acc"], "val_f1_macro": val["f1_macro"],
        **{f"val_{k}": v for k, v in val.items() if k.startswith("acc_")},
        "best": improved, "time_s": time.perf_counter() - started[0],
        "cpu_s": time.process_time() - started[1],  # this process's CPU time (shared machines)
    }  # fmt: skip
    if len(run.model.modalities) > 1 and run.cfg.balance.ogm_ge:
        record.update(state.coeff_sums.means())
    loss_terms.merge(record, {k: v / seen for k, v in term_sums.items()}, "loss terms", prefix="train_")
    record.update(
        {f"val_{k}": v for k, v in val.items() if isinstance(v, float) and f"val_{k}" not in record}
    )
    # plotted: any quantity a term reports both per training step and per evaluation (train_/val_
    # pairs, e.g. energy per sample), then the terms' end-of-epoch scalars
    paired = [k for k in sorted(term_sums) if f"train_{k}" in record and f"val_{k}" in record]
    plotted: list[str] = [f"{p}_{k}" for k in paired for p in ("train", "val")]
    for term in run.terms:
        scalars = term.end_of_epoch(dict(record))
        loss_terms.merge(record, scalars, f"loss term {term.name!r}")
        plotted += scalars
    return record, plotted


def _payload(run: Run, kind: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    return checkpoint_payload(
        kind, spec=run.spec, data=run.info, config=run.cfg.resolved_dict(), model=run.model, state=run.state,
        metrics=metrics, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler, terms=run.terms,
    )  # fmt: skip


def save_last(run: Run) -> None:
    """Write last.pt (rank 0), unless the weights are no longer finite."""
    # An update can overflow the weights while the loss that produced it was finite: never let such
    # a state replace the last good checkpoint (replicas are identical, so every rank agrees).
    if not all(bool(torch.isfinite(p).all()) for p in run.model.parameters()):
        raise TrainingDiverged(_diverged_message("parameters", run.state, run.last_path, after=True))
    if run.dist.is_main:
        save_checkpoint(run.last_path, _payload(run, "last"))
    distributed.barrier()


# --- the end: test once with the checkpoint chosen on validation -----------------------------------------


def test_best(run: Run) -> TrainResult:
    """Load best.pt, evaluate the test split once, write results.json and the confusion matrices."""
    cfg, state, info, model = run.cfg, run.state, run.info, run.model
    distributed.barrier()
    best = read_checkpoint(run.best_path)
    load_state(model, best["model"], f"checkpoint {run.best_path}")
    test = evaluate(model, run.data.test, info.num_classes, model.modalities, run.dist.device, run.autocast,
                    run.terms)  # fmt: skip
    if run.dist.is_main:
        chosen = "best epoch chosen on validation accuracy (ties: lower validation loss)"
        rules = loss_terms.constraints(run.terms)
        if rules:
            chosen += f" among the epochs meeting {' and '.join(rules)} (all epochs if none does)"
        summary = {
            "protocol": (
                f"{chosen}; test evaluated once with that checkpoint; T={info.time_steps}; "
                f"{cfg.dataset} cache {cfg.data.dir}"
            ),
            "best_epoch": state.best_epoch, "epochs_run": state.epoch, "stopped_early": state.stopped_early,
            "steps": state.step, "val": best["metrics"], "test": test, "class_names": info.class_names,
            "model": run.spec.to_dict(), "environment": run.numerics,
        }  # fmt: skip
        if run.terms:
            summary["loss_terms"] = [t.name for t in run.terms]
        if rules:
            summary["best_feasible"] = state.best_feasible
        atomic_write_bytes(cfg.run_dir / "results.json", (json.dumps(summary, indent=1) + "\n").encode())
        for split, metrics in (("val", best["metrics"]), ("test", test)):
            title = f"{cfg.run_name} {split} (best epoch {state.best_epoch + 1}): acc {metrics['acc']:.1%}"
            plot_confusion(
                metrics["confusion"], info.class_names, cfg.run_dir / f"confusion_{split}.png", title
            )
        within = f" among epochs meeting {' and '.join(rules)}" if rules and state.best_feasible else ""
        line = (
            f"test (best epoch {state.best_epoch + 1}, chosen on val{within}): "
            f"acc {test['acc']:.2%}, F1 {test['f1_macro']:.3f}"
        )
        if "acc_audio" in test:
            line += f" (audio head {test['acc_audio']:.2%}, video head {test['acc_video']:.2%})"
        run.show.print(line)
        if rules and not state.best_feasible:
            # stderr, whatever the progress mode: the run did not do what it was asked
            print(
                f"warning: no epoch met {' and '.join(rules)}; chosen on val over all epochs", file=sys.stderr
            )
    return TrainResult(
        cfg.run_dir, state.best_epoch, best["metrics"], test, state.epoch, state.stopped_early, model
    )


# --- pieces the loop uses ---------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    num_classes: int,
    modalities: tuple[str, ...],
    device: torch.device,
    autocast: Any = contextlib.nullcontext,
    terms: Sequence[LossTerm] = (),
) -> dict[str, Any]:
    """Metrics of ``model`` (eval mode) over a loader; CE without label smoothing as the loss. Each
    loss term's ``evaluate_end`` scalars join the metrics under their own keys."""
    model.eval()
    metrics = ClassificationMetrics(num_classes, modalities if len(modalities) > 1 else (), device)
    loader.sampler.set_epoch(0)
    for term in terms:
        term.evaluate_begin()
    for batch in loader:
        x, y = to_device(batch, modalities, device), batch["label"].to(device)
        with autocast():
            out = model.forward_all(x)
        metrics.update(out, y, F.cross_entropy(out["logits"].float(), y))
    result = metrics.compute()
    for term in terms:
        loss_terms.merge(result, term.evaluate_end(), f"loss term {term.name!r}")
    return result


def mixed_precision(amp: str, device: torch.device) -> tuple[str, Any]:
    """The resolved mode (``auto``: bf16 on GPUs, none on CPUs) and a context-manager factory."""
    amp = amp if amp != "auto" else ("bf16" if device.type == "cuda" else "none")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA GPU (use bf16 or none on the CPU)")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return amp, (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext


class _TrainForward(nn.Module):
    def __init__(self, model: nn.Module, parts: bool, probe: bool = False) -> None:
        super().__init__()
        self.model, self.parts, self.probe = model, parts, probe

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.parts:
            return self.model.forward_all(batch, parts=True, detach_heads=self.probe)
        return self.model.forward_all(batch)


class _StopSignals:
    """Within the ``with``: SIGTERM/SIGUSR1 set ``flag`` instead of killing the process, so the loop
    can save ``last.pt`` at the next step (SLURM sends one before preempting or at the time limit)."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.flag, self._old = 0.0, {}

    def __enter__(self) -> _StopSignals:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = 1.0

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _refuse_existing_run(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / "last.pt").is_file() and not overwrite:
        raise UserError(
            f"run directory {run_dir} already holds a run: pass --resume to continue it, "
            "--overwrite to start it again, or --name for a new one"
        )


def _check_resumable(cfg: TrainConfig, ckpt: dict[str, Any], path: Path) -> None:
    saved = ckpt["config"]
    with contextlib.suppress(UserError):  # keys added since the checkpoint take their defaults
        saved = TrainConfig.from_dict(saved, source=str(path)).resolved_dict()
    old, new = _flatten(saved), _flatten(cfg.resolved_dict())
    changed = [
        k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
    ]
    if changed:
        diffs = ", ".join(f"{k}={old.get(k)!r}→{new.get(k)!r}" for k in changed[:4])
        more = f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""
        raise UserError(f"--resume: checkpoint {path} was trained with other settings: {diffs}{more}")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and not k.endswith(("neuron", "overrides")):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _diverged_message(what: str, state: TrainState, last_path: Path, after: bool = False) -> str:
    """``after``: the update of step ``state.step`` overflowed; else the loss of the next step."""
    where = f"after step {state.step}; stopped without saving" if after else (
        f"at step {state.step + 1}; stopped before the update"
    )  # fmt: skip
    keep = f"last good checkpoint: {last_path}" if last_path.is_file() else "no checkpoint was written yet"
    return f"{what} not finite {where} ({keep}); try a lower --lr or --grad-clip"
