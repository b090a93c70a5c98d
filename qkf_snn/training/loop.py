"""The training loop, top to bottom: processes → data → model → optimiser → resume → epochs
(train, validate, select on validation, early stop, checkpoint) → test once with the best model.

Exact resume: ``last.pt`` is written at the end of every epoch and every ``run.checkpoint_every``
steps with the model, optimiser, scheduler, scaler, RNG states and the position inside the epoch.
Data order and augmentation depend only on (seed, epoch, position) (see data.py) and OGM-GE's noise
on (seed, step), so a run killed at any point and resumed takes the same steps as one never killed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
from qkf_snn.training.build import DataInfo, check_model_fits, model_spec
from qkf_snn.training.build import loss_terms as builtin_terms
from qkf_snn.training.checkpoint import (
    init_from,
    load_state,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from qkf_snn.training.config import TrainConfig, save_config
from qkf_snn.training.data import build_dataset, make_loader, per_rank_batch, to_device
from qkf_snn.training.logging import RunLogger
from qkf_snn.training.metrics import ClassificationMetrics
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
class TrainState:
    """Everything about progress that is not in the model/optimiser/scheduler state dicts."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    best_epoch: int = -1
    best_acc: float = -1.0
    best_loss: float = math.inf
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    # sums over the current epoch's batches on this rank (train loss and accuracy)
    loss_sum: float = 0.0
    ce_sum: float = 0.0  # the fused logits' CE alone (comparable with and without auxiliary terms)
    correct: int = 0
    seen: int = 0
    coeff_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # audio, video, batches
    term_sums: dict[str, float] = field(default_factory=dict)  # the loss terms' step scalars × samples


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    val: dict[str, Any]  # validation metrics of the best epoch
    test: dict[str, Any]  # test metrics of the best checkpoint, evaluated once
    epochs_run: int
    stopped_early: bool
    model: nn.Module | None = None  # the trained model with the best checkpoint's weights (eval mode)


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
    console,
    terms: Sequence[LossTerm],
) -> TrainResult:
    device, main = dist.device, dist.is_main
    run_dir, last_path, best_path = cfg.run_dir, cfg.run_dir / "last.pt", cfg.run_dir / "best.pt"
    show = EpochProgress(cfg.run.progress, enabled=main, console=console)

    # --- the run directory: fresh, resumed, or refused (nothing is written until the model is built) ---
    ckpt = None
    if resume and last_path.is_file():
        ckpt = read_checkpoint(last_path)
        _check_resumable(cfg, ckpt, last_path)
    elif resume:
        show.print(f"--resume: no checkpoint in {run_dir} yet, starting from scratch")
    else:
        _refuse_existing_run(run_dir, overwrite)

    # --- seeds, precision ---------------------------------------------------------------------------
    seed = cfg.run.seed
    torch.manual_seed(seed)
    amp, autocast = mixed_precision(cfg.run.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    # --- data ---------------------------------------------------------------------------------------
    train_ds = build_dataset(cfg, None, "train", augment=cfg.data.augment)
    val_ds, test_ds = build_dataset(cfg, None, "val"), build_dataset(cfg, None, "test")
    info = DataInfo.of(train_ds)
    batch = per_rank_batch(cfg.data.batch_size, dist.world_size)
    eval_batch = per_rank_batch(cfg.data.eval_batch_size or cfg.data.batch_size, dist.world_size)
    common = dict(seed=seed, workers=cfg.data.workers, rank=dist.rank, world_size=dist.world_size,
                  pin_memory=device.type == "cuda")  # fmt: skip
    train_loader = make_loader(train_ds, batch_size=batch, train=True, **common)
    val_loader = make_loader(val_ds, batch_size=eval_batch, train=False, **common)
    test_loader = make_loader(test_ds, batch_size=eval_batch, train=False, **common)
    # a fixed random subset of train clips, unaugmented, for exact BN statistics before validation
    calib_loader = make_loader(build_dataset(cfg, None, "train"), batch_size=eval_batch, train=True, **common)
    steps_per_epoch = len(train_loader)

    # --- model, optimiser, schedule ------------------------------------------------------------------
    spec = model_spec(cfg, info)
    model = spec.build()
    check_model_fits(model, info, f"model {spec.name}")
    if cfg.run.resume_from and ckpt is None:  # fine-tuning: start from another run's weights
        init_from(model, cfg.run.resume_from)
    if cfg.quant.spec is not None:  # QAT: fake-quantized BN-folded weights, BN frozen (models/quant.py)
        enable_qat(model, cfg.quant.spec)
    model.to(device)
    modalities = model.modalities
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine.of(cfg, steps_per_epoch))
    state = TrainState()
    terms = [*builtin_terms(cfg, model), *terms]
    loss_terms.check_names(terms)
    for term in terms:
        term.attach(model)

    # --- resume: every state dict, the RNGs and the position in the epoch ------------------------------
    if ckpt is not None:
        load_state(model, ckpt["model"], f"checkpoint {last_path}")
        groups = len(ckpt["optimizer"]["param_groups"])
        if groups != len(optimizer.param_groups):
            raise UserError(
                f"--resume: checkpoint {last_path} holds an optimiser with {groups} parameter groups, this "
                f"version builds {len(optimizer.param_groups)} (an older qkf wrote it); resume with that "
                "version or start again with --overwrite"
            )
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        state = TrainState(**ckpt["state"])
        loss_terms.load_states(terms, ckpt.get("terms"), last_path)
        show.print(
            f"resumed {last_path} at epoch {state.epoch + 1}, batch {state.batch_in_epoch}, step {state.step}"
        )

    # --- the run directory, once data, model and checkpoint are known to work: locked, then written ---
    if main:
        lock.acquire()
        if ckpt is None:
            _refuse_existing_run(run_dir, overwrite)  # again under the lock: a run may have ended meanwhile
        remove_stale_temps(run_dir)
        if ckpt is None:
            for stale in ("best.pt", "last.pt", "results.json"):
                (run_dir / stale).unlink(missing_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    logger = RunLogger(
        run_dir,
        enabled=main,
        resume_epoch=state.epoch if ckpt is not None else None,
        resume_step=state.step if ckpt is not None else None,
    )

    def payload(kind: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        base = {"kind": kind, "spec": spec.to_dict(), "data": info.to_dict(), "config": cfg.resolved_dict(),
                "model": model.state_dict(), "epoch": state.epoch, "step": state.step,
                "batch_in_epoch": state.batch_in_epoch, "metrics": metrics or {}}  # fmt: skip
        if kind == "last":
            base.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        scaler=scaler.state_dict(), rng=rng_state(), state=asdict(state),
                        terms=loss_terms.states(terms))  # fmt: skip
        return base

    def save_last() -> None:
        # An update can overflow the weights while the loss that produced it was finite: never let such
        # a state replace the last good checkpoint (replicas are identical, so every rank agrees).
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise TrainingDiverged(_diverged_message("parameters", state, last_path, after=True))
        if main:
            save_checkpoint(last_path, payload("last"))
        distributed.barrier()

    # DDP wraps a module whose forward returns every output the loss needs (forward_all, and each
    # modality's share of the fused logits for OGM-GE), so gradient sync sees one forward call.
    probe = trains_probe_heads(cfg, model)
    step_model: nn.Module = _TrainForward(model, parts=len(modalities) > 1, probe=probe)
    if dist.enabled:
        step_model = DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None
        )
    stop = _StopSignals()
    numerics = determinism.environment(cfg.run.cpu_isa)
    if numerics.get("cpu_isa_pinned") is False:
        show.print(
            f"run.cpu_isa {cfg.run.cpu_isa}: not in effect (CPU kernels {numerics['cpu_capability']}: this "
            "process ran tensor code before the run started); its numbers may differ from a pinned run's"
        )
    show.print(
        f"training {spec.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on {cfg.dataset} "
        f"{cfg.modality}: {len(train_ds)} train / {len(val_ds)} val clips, T={info.time_steps}, "
        f"{steps_per_epoch} steps/epoch, {dist.world_size} process(es) on {device}, amp {amp} → {run_dir}"
    )

    # --- epochs ---------------------------------------------------------------------------------------
    with stop, contextlib.closing(logger), contextlib.closing(show):
        while state.epoch < cfg.optim.epochs and not state.stopped_early:
            epoch, started, cpu_started = state.epoch, time.perf_counter(), time.process_time()
            train_loader.sampler.set_epoch(epoch, start=state.batch_in_epoch * batch)
            step_model.train()
            show.start(epoch, cfg.optim.epochs, steps_per_epoch, state.batch_in_epoch)
            for batch_data in train_loader:
                x = to_device(batch_data, modalities, device)
                y = batch_data["label"].to(device)
                with autocast():
                    out = step_model(x)
                loss, ce, logged = loss_terms.objective(
                    out, {**x, "label": y}, terms, cfg.optim.label_smoothing
                )
                # Stop before any update if the loss is not finite on any rank, or a signal came.
                flags = distributed.all_reduce_sum(
                    torch.tensor([float(not torch.isfinite(loss)), stop.flag], device=device)
                )
                if flags[0] > 0:
                    show.stop()
                    raise TrainingDiverged(_diverged_message(f"loss ({loss.item()})", state, last_path))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                mod = Modulation()
                if len(modalities) > 1 and ogm_active(cfg.balance, epoch):
                    mod = apply_ogm_ge(
                        model, out, y, cfg.balance, seed=seed, step=state.step, optimizer=optimizer
                    )
                if cfg.optim.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                # bookkeeping: position, this rank's running sums, logs, periodic checkpoint
                state.step += 1
                state.batch_in_epoch += 1
                n, loss_value = y.numel(), loss.item()
                state.loss_sum += loss_value * n
                ce_value = ce.item()
                state.ce_sum += ce_value * n
                for key, value in logged.items():
                    state.term_sums[key] = state.term_sums.get(key, 0.0) + value * n
                state.correct += int((out["logits"].argmax(-1) == y).sum())
                state.seen += n
                c = state.coeff_sums
                state.coeff_sums = [c[0] + mod.coeff_audio, c[1] + mod.coeff_video, c[2] + 1]
                show.update(loss_value, state.correct / state.seen)
                if state.step % cfg.run.log_every == 0:
                    record = {
                        "step": state.step,
                        "epoch": epoch,
                        "loss": loss_value,
                        "lr": scheduler.get_last_lr()[0],
                    }
                    record.update(ce=ce_value, **logged)
                    if len(modalities) > 1 and cfg.balance.ogm_ge:
                        record.update(ogm_coeff_audio=mod.coeff_audio, ogm_coeff_video=mod.coeff_video,
                                      ogm_ratio_audio=mod.ratio_audio)  # fmt: skip
                    logger.step(record)
                if cfg.run.checkpoint_every and state.step % cfg.run.checkpoint_every == 0:
                    save_last()
                if flags[1] > 0:
                    show.stop()
                    save_last()
                    raise TrainingInterrupted(f"stopped by a signal; resume from {last_path} with --resume")
            show.stop()

            # --- end of epoch: reduce train sums, validate, select, log, checkpoint -----------------------
            term_keys = sorted(state.term_sums)
            sums = distributed.all_reduce_sum(
                torch.tensor(
                    [state.loss_sum, state.correct, state.seen, state.ce_sum,
                     *(state.term_sums[k] for k in term_keys)],
                    dtype=torch.float64,
                    device=device,
                )
            )  # fmt: skip
            if cfg.run.bn_recalibration and cfg.quant.spec is None:  # QAT freezes BN: nothing to redo
                calib_loader.sampler.set_epoch(0)
                calib = itertools.islice(calib_loader, cfg.run.bn_recalibration)
                recalibrate_bn(model, (to_device(b, modalities, device) for b in calib))
            distributed.broadcast_buffers(model)  # BN statistics of rank 0 on every rank
            val = evaluate(model, val_loader, info.num_classes, modalities, device, autocast, terms)
            improved = val["acc"] > state.best_acc or (
                val["acc"] == state.best_acc and val["loss"] < state.best_loss
            )
            record = {
                "epoch": epoch, "step": state.step, "lr": scheduler.get_last_lr()[0],
                "train_loss": float(sums[0] / max(sums[2], 1)), "train_ce": float(sums[3] / max(sums[2], 1)),
                "train_acc": float(sums[1] / max(sums[2], 1)),
                "val_loss": val["loss"], "val_acc": val["acc"], "val_f1_macro": val["f1_macro"],
                **{f"val_{k}": v for k, v in val.items() if k.startswith("acc_")},
                "best": improved, "time_s": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu_started,  # this process's CPU time (shared machines)
            }  # fmt: skip
            if len(modalities) > 1 and cfg.balance.ogm_ge:
                c = state.coeff_sums
                record.update(ogm_coeff_audio=c[0] / max(c[2], 1), ogm_coeff_video=c[1] / max(c[2], 1))
            means = {k: v / max(sums[2], 1) for k, v in zip(term_keys, sums[4:], strict=True)}
            loss_terms.merge(record, means, "loss terms", prefix="train_")  # step scalars, per sample
            record.update(
                {f"val_{k}": v for k, v in val.items() if isinstance(v, float) and f"val_{k}" not in record}
            )
            epoch_keys: list[str] = []
            for term in terms:
                scalars = term.end_of_epoch(dict(record))
                loss_terms.merge(record, scalars, f"loss term {term.name!r}")
                epoch_keys += scalars
            state.epoch, state.batch_in_epoch = epoch + 1, 0
            state.loss_sum, state.ce_sum, state.correct, state.seen = 0.0, 0.0, 0, 0
            state.coeff_sums, state.term_sums = [0.0, 0.0, 0.0], {}
            if improved:
                state.best_epoch, state.best_acc, state.best_loss, state.bad_epochs = (
                    epoch,
                    val["acc"],
                    val["loss"],
                    0,
                )
                if main:
                    save_checkpoint(best_path, payload("best", val))
            else:
                state.bad_epochs += 1
            state.stopped_early = bool(cfg.run.patience) and state.bad_epochs >= cfg.run.patience
            state.history.append(record)
            logger.epoch(record)
            show.epoch_line(record, cfg.optim.epochs)
            if main:
                plot_curves(state.history, run_dir / "curves.png", f"{cfg.run_name}", epoch_keys)
            save_last()
            if state.stopped_early:
                show.print(f"early stop: no better validation accuracy for {cfg.run.patience} epochs")

    # --- test, once, with the checkpoint chosen on validation --------------------------------------------
    distributed.barrier()
    best = read_checkpoint(best_path)
    load_state(model, best["model"], f"checkpoint {best_path}")
    test = evaluate(model, test_loader, info.num_classes, modalities, device, autocast, terms)
    result = TrainResult(
        run_dir, state.best_epoch, best["metrics"], test, state.epoch, state.stopped_early, model
    )
    if main:
        summary = {
            "protocol": (
                "best epoch chosen on validation accuracy (ties: lower validation loss); test evaluated "
                f"once with that checkpoint; T={info.time_steps}; {cfg.dataset} cache {cfg.data.dir}"
            ),
            "best_epoch": state.best_epoch, "epochs_run": state.epoch, "stopped_early": state.stopped_early,
            "steps": state.step, "val": best["metrics"], "test": test, "class_names": info.class_names,
            "model": spec.to_dict(), "environment": numerics,
        }  # fmt: skip
        if terms:
            summary["loss_terms"] = [t.name for t in terms]
        atomic_write_bytes(run_dir / "results.json", (json.dumps(summary, indent=1) + "\n").encode())
        for split, metrics in (("val", best["metrics"]), ("test", test)):
            title = f"{cfg.run_name} {split} (best epoch {state.best_epoch + 1}): acc {metrics['acc']:.1%}"
            plot_confusion(metrics["confusion"], info.class_names, run_dir / f"confusion_{split}.png", title)
        line = (
            f"test (best epoch {state.best_epoch + 1}, chosen on val): "
            f"acc {test['acc']:.2%}, F1 {test['f1_macro']:.3f}"
        )
        if "acc_audio" in test:
            line += f" (audio head {test['acc_audio']:.2%}, video head {test['acc_video']:.2%})"
        show.print(line)
    return result


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on 1-D parameters (biases, BatchNorm, PLIF time constants). Groups are
    tagged with the encoder they belong to (``"modality"``), so OGM-GE can scale one encoder's step."""
    encoders = {
        m: getattr(model, m) for m in ("audio", "video") if isinstance(getattr(model, m, None), nn.Module)
    }
    owner = {id(p): m for m, encoder in encoders.items() for p in encoder.parameters()}
    groups = []
    for modality in (*encoders, None):
        params = [p for p in model.parameters() if p.requires_grad and owner.get(id(p)) == modality]
        for decay in (True, False):
            chosen = [p for p in params if (p.dim() >= 2) == decay]
            if chosen:
                wd = cfg.optim.weight_decay if decay else 0.0
                groups.append({"params": chosen, "weight_decay": wd, "modality": modality or "shared"})
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


class WarmupCosine:
    """lr factor per optimiser step: linear warm-up to 1, then cosine down to min_lr / lr."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.warmup_steps, self.total_steps, self.min_ratio = warmup_steps, total_steps, min_ratio

    @classmethod
    def of(cls, cfg: TrainConfig, steps_per_epoch: int) -> WarmupCosine:
        total = max(1, cfg.optim.epochs * steps_per_epoch)
        warmup = min(total, round(cfg.optim.warmup_epochs * steps_per_epoch))
        return cls(warmup, total, min(1.0, cfg.optim.min_lr / cfg.optim.lr))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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
