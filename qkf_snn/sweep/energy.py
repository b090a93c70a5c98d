"""`qkf sweep energy`: one training run per energy budget or penalty weight, plus the unconstrained run
(and the ReLU twin), each selected on validation and tested once, then measured by the profiler; the
table and the accuracy-versus-energy front of whatever has finished.

A sweep lives in one folder::

    DIR/sweep.json            what the sweep is (base settings, points); a rerun must match it
    DIR/runs/<point>/         an ordinary `qkf train` run directory (config.yaml, best.pt, results.json)
    DIR/runs/<point>/point.json   the point's measurements (written last: its presence = finished)
    DIR/claims/<point>/       the lock a sweep process holds while it works on that point
    DIR/front.{md,json,csv}, DIR/pareto.png   the table and the plot (see report.py)

Resumable and shareable: a finished point is skipped; a killed one resumes from its last.pt; a point
another process is working on is left to it (its claim lock is held), so several sweep processes, or
SLURM array tasks (``point=I``), can share one folder. The table is rewritten under a lock after every
point, so the last process to finish writes the complete one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from qkf_snn.errors import RunStopped, UserError
from qkf_snn.io import FolderLock, atomic_write_json, check_destination, writing
from qkf_snn.training.config import EnergyConfig, TrainConfig, compose
from qkf_snn.units import format_energy, parse_energy

MANIFEST = "sweep.json"
POINT_FILE = "point.json"
FORMAT = "qkf-energy-sweep"
VERSION = 1


# --- the kinds of point: one entry each (what it sets on top of the base configuration) --------------
@dataclass(frozen=True)
class PointKind:
    title: str  # how the table and the plot name it
    overrides: Callable[[str | None], dict[str, Any]]  # the value as typed → dotted config overrides
    constrained: bool  # on the front (the twin is a reference, not a spiking trade-off)
    # Whether training prices energy. If not, no energy setting changes the run, and the point keeps
    # every one at its default (whatever --energy-model or --set energy.* say): its run is the same
    # whatever model or warm-up a sweep uses, so it can be reused.
    priced: bool = True


POINT_KINDS: dict[str, PointKind] = {
    "unconstrained": PointKind(
        "unconstrained",
        lambda v: {"energy.weight": 0.0, "energy.budget": None},
        constrained=True,
        priced=False,
    ),
    "relu": PointKind(
        "ReLU twin (ANN)",
        lambda v: {"energy.weight": 0.0, "energy.budget": None, "model.neuron.kind": "relu"},
        constrained=False,
        priced=False,
    ),
    "budget": PointKind("budget", lambda v: {"energy.budget": v, "energy.weight": 0.0}, constrained=True),
    "weight": PointKind(
        "penalty", lambda v: {"energy.weight": float(v or 0), "energy.budget": None}, constrained=True
    ),
}


@dataclass(frozen=True)
class Point:
    index: int  # position in the sweep (a SLURM array task's index)
    name: str  # run directory name, e.g. s0_budget_2uJ
    kind: str  # a key of POINT_KINDS
    value: str | None  # the budget or weight as typed (normalised), None for the references
    seed: int
    overrides: dict[str, Any]

    @property
    def config_id(self) -> str:
        """The point without its seed: what seeds are averaged over."""
        return self.name.split("_", 1)[1]

    def label(self) -> str:
        title = POINT_KINDS[self.kind].title
        return f"{title} {self.value}" if self.value is not None else title


@dataclass
class SweepSpec:
    """Everything that defines a sweep (what ``sweep.json`` records)."""

    dataset: str
    modality: str
    out: Path
    mode: str  # budgets | weights
    values: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    relu_twin: bool = False
    energy_model: str | None = None  # None: the training default
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # the base: --data and every --set

    def key(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("out")
        return d


def parse_list(text: str, option: str) -> list[str]:
    """``"2uJ,4uJ, 8uJ"`` → ``["2uJ", "4uJ", "8uJ"]``; an empty list or item is refused."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UserError(f"{option} {text!r}: give a comma-separated list with no empty item, e.g. 2uJ,4uJ")
    if len(set(items)) != len(items):
        raise UserError(f"{option} {text!r}: a value is repeated")
    return items


def normalise_budget(text: str, option: str = "--budgets") -> str:
    """A budget as one spelling (``5 µJ`` → ``5uJ``): a point's name and its config value."""
    parse_energy(text, option)  # refuses a bad unit or a value ≤ 0, naming the option
    return "".join(text.split()).replace("µ", "u").replace("μ", "u")


def normalise_weight(text: str, option: str = "--weights") -> str:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise UserError(f"{option} {text!r}: a penalty weight must be a positive finite number")
    return text.strip()


ENERGY_DEFAULTS = {f"energy.{f.name}": f.default for f in fields(EnergyConfig)}


def points(spec: SweepSpec) -> list[Point]:
    """The sweep's points in order: per seed, the unconstrained run, the ReLU twin, then the values."""
    kind = {"budgets": "budget", "weights": "weight"}[spec.mode]
    out: list[Point] = []
    for seed in spec.seeds:
        plan: list[tuple[str, str | None]] = [("unconstrained", None)]
        if spec.relu_twin:
            plan.append(("relu", None))
        plan += [(kind, v) for v in spec.values]
        for k, value in plan:
            name = f"s{seed}_{k}" + (f"_{value}" if value is not None else "")
            overrides = dict(POINT_KINDS[k].overrides(value))
            if not POINT_KINDS[k].priced:
                overrides = {**ENERGY_DEFAULTS, **overrides}
            elif spec.energy_model is not None:
                overrides["energy.model"] = spec.energy_model
            out.append(Point(len(out), name, k, value, seed, overrides))
    return out


def point_config(spec: SweepSpec, point: Point) -> TrainConfig:
    """The full training configuration of one point: recipe ← base overrides ← the point's own."""
    overrides = {
        **spec.overrides,
        **point.overrides,
        "run.seed": point.seed,
        "run.out": str(spec.out / "runs"),
        "run.name": point.name,
    }
    return compose(spec.dataset, spec.modality, recipe=spec.recipe, overrides=overrides)


# --- running --------------------------------------------------------------------------------------
def prepare(spec: SweepSpec) -> list[tuple[Point, TrainConfig]]:
    """Check everything before any work: every point's configuration, the energy model, the folder and
    its manifest (a folder holding another sweep is refused). Writes the manifest."""
    from qkf_snn.hardware.profile.estimator import check_energy_model
    from qkf_snn.hardware.profile.term import energy_terms

    if spec.energy_model is not None:
        check_energy_model(spec.energy_model, "--energy-model")
    check_destination(spec.out, "--out", "dir")
    plan = [(p, point_config(spec, p)) for p in points(spec)]
    for _, cfg in plan:
        energy_terms(cfg)  # the energy settings a recipe or --set gave, checked as `qkf train` checks them
    reported = spec.energy_model or plan[0][1].energy.model  # the training default when not named
    manifest = {"format": FORMAT, "version": VERSION, **spec.key(), "reported_model": reported,
                "points": [asdict(p) for p, _ in plan]}  # fmt: skip
    path = spec.out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise UserError(
                f"--out {spec.out}: {MANIFEST} is unreadable; remove it or choose another --out"
            ) from None
        a, b = _comparable(old), _comparable(manifest)
        if a != b:
            diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if len(diff) > 1 and "points" in diff:  # the points follow from the settings: name those
                diff.remove("points")
            raise UserError(
                f"--out {spec.out}: holds a sweep with other settings ({', '.join(diff)} differ); "
                "rerun it with its own settings or choose another --out"
            )
    else:
        atomic_write_json(path, manifest)
    return plan


def _comparable(manifest: dict[str, Any]) -> Any:
    """What must match between two processes of one sweep: not where things are or how they are shown
    (the settings a resumed run may change: workers, threads, progress, the cache's path)."""
    from qkf_snn.training.loop import RESUMABLE_CHANGES

    doc = json.loads(json.dumps({k: v for k, v in manifest.items() if k != "version"}))
    doc["overrides"] = {k: v for k, v in doc.get("overrides", {}).items() if k not in RESUMABLE_CHANGES}
    # A point is its name, kind, value and seed; its overrides follow from those and the base (and
    # may be spelt differently by another version: a finished run's settings are checked one by
    # one, check_same_settings).
    doc["points"] = [{k: v for k, v in p.items() if k != "overrides"} for p in doc.get("points", [])]
    return doc


def run_sweep(spec: SweepSpec, *, only: int | None = None, console: Console | None = None) -> dict[str, Any]:
    """Train and measure every point not finished (or only point ``only``), then write the report.
    Returns the report document. A point whose loss diverged does not stop the others: the sweep goes
    on and then ends with :class:`PointsDiverged` (exit 1); an interruption (SIGTERM, SIGUSR1) stops
    it at once, to be resumed."""
    from qkf_snn.sweep.report import write_report
    from qkf_snn.training.loop import TrainingDiverged

    con = console or Console()
    plan = prepare(spec)
    if only is not None and not 0 <= only < len(plan):
        raise UserError(f"--point {only}: the sweep has points 0 to {len(plan) - 1}")
    todo = [plan[only]] if only is not None else plan
    diverged: list[str] = []
    for point, cfg in todo:
        try:
            with claim(spec.out, point):
                _run_point(spec, point, cfg, con)
        except PointBusy as busy:
            if only is not None:
                raise UserError(f"--point {only} ({point.name}): {busy.holder}") from None
            con.print(f"point {point.index} {point.name}: {busy.holder}, left to it")
        except TrainingDiverged as err:
            con.print(f"point {point.index} {point.name}: diverged: {err}")
            diverged.append(point.name)
        with report_lock(spec.out):
            doc = write_report(spec.out)
    if diverged:
        raise PointsDiverged(
            f"{len(diverged)} point(s) diverged: {', '.join(diverged)} (the others are in the table)"
        )
    return doc


class PointsDiverged(RunStopped):
    """One or more points' training diverged (the rest of the sweep ran)."""

    exit_code = 1


def _run_point(spec: SweepSpec, point: Point, cfg: TrainConfig, con: Console) -> None:
    from qkf_snn.hardware.profile.term import energy_terms
    from qkf_snn.training.loop import train

    run_dir = cfg.run_dir
    if (run_dir / POINT_FILE).is_file():
        check_same_settings(cfg, run_dir, point)
        con.print(f"point {point.index} {point.name}: finished, skipped")
        return
    if (run_dir / "results.json").is_file():
        check_same_settings(cfg, run_dir, point)
        con.print(f"point {point.index} {point.name}: trained, measuring")
    else:
        resumed = (run_dir / "last.pt").is_file()
        con.print(
            f"point {point.index} {point.name}: {'resuming' if resumed else 'training'} ({point.label()})"
        )
        # as `qkf train` runs it; a killed point continues from its last.pt
        train(cfg, resume=True, console=con, terms=energy_terms(cfg))
    record = measure_point(cfg, point)
    atomic_write_json(run_dir / POINT_FILE, record)
    val, test, model = record["val"], record["test"], spec.energy_model or cfg.energy.model
    con.print(
        f"point {point.index} {point.name}: val acc {val['acc']:.2%}, test acc {test['acc']:.2%}, "
        f"{format_energy(val['energy_pj'][model])} per sample on val ({model})"
    )


def check_same_settings(cfg: TrainConfig, run_dir: Path, point: Point) -> None:
    """A finished run reused for a point must have been trained with the point's settings."""
    from qkf_snn.training.loop import RESUMABLE_CHANGES, _flatten

    try:
        saved = TrainConfig.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()), str(run_dir))
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"point {point.name}: {run_dir}/config.yaml is unreadable ({err})") from None
    old, new = _flatten(saved.resolved_dict()), _flatten(cfg.resolved_dict())
    changed = [
        k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
    ]
    if changed:
        diffs = ", ".join(f"{k}={old.get(k)!r}→{new.get(k)!r}" for k in changed[:4])
        raise UserError(
            f"point {point.name}: {run_dir} was trained with other settings ({diffs}); "
            "move it away or choose another --out"
        )


# --- measuring a finished run: the profiler on the validation-selected checkpoint ---------------------
SPLITS = ("val", "test")


def measure_point(cfg: TrainConfig, point: Point) -> dict[str, Any]:
    """Accuracies from the run's results.json (val: the selected epoch; test: evaluated once), energy
    per sample under every energy model and firing rate from the profiler on that checkpoint, on val
    and on test (every model: a run that does not price energy is shared by sweeps of other models)."""
    results = json.loads((cfg.run_dir / "results.json").read_text())
    record: dict[str, Any] = {
        "point": asdict(point),
        "label": point.label(),
        "trained_against": cfg.energy.model if cfg.energy.active else None,
        "best_epoch": results["best_epoch"],
        "epochs_run": results["epochs_run"],
        "protocol": results["protocol"],
    }
    for split in SPLITS:
        metrics = results["val" if split == "val" else "test"]
        record[split] = {
            "acc": metrics["acc"],
            "f1_macro": metrics["f1_macro"],
            **profile_split(cfg, split),
        }
    return record


def profile_split(cfg: TrainConfig, split: str) -> dict[str, Any]:
    """The profiler's numbers for ``best.pt`` of the run on one split of its cache (as `qkf profile`)."""
    from qkf_snn.hardware.profile import CountOptions
    from qkf_snn.hardware.profile.checkpoint import profile_checkpoint
    from qkf_snn.hardware.profile.conventions import neuron_totals
    from qkf_snn.hardware.profile.energy import estimate_energy

    batch = cfg.data.eval_batch_size or cfg.data.batch_size
    prof, _ = profile_checkpoint(cfg.run_dir / "best.pt", Path(str(cfg.data.dir)), split, None, batch, "cpu")
    energy = estimate_energy(prof, CountOptions())
    neurons = neuron_totals(prof)
    return {
        "energy_pj": {name: e.total_pj for name, e in energy.items()},
        "firing_rate": neurons["firing_rate"] if neurons.get("neurons") else None,
        "samples": prof.samples,
    }


# --- locks ------------------------------------------------------------------------------------------
class PointBusy(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def claim(out: Path, point: Point) -> Iterator[None]:
    """Hold ``DIR/claims/<point>`` while working on the point; another holder → PointBusy. A run
    directory linked from another sweep's folder (a reference run shared by sweeps of several energy
    models) is claimed in the folder it really lives in, so the two sweeps never train it twice."""
    run_dir = (out / "runs" / point.name).resolve()
    lock = FolderLock(run_dir.parent.parent / "claims" / point.name, "point", "")
    try:
        lock.acquire()
    except UserError as err:
        raise PointBusy(str(err).split(": ", 1)[1].rstrip("; ")) from None  # "in use by pid ..."
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def report_lock(out: Path) -> Iterator[None]:
    """A short blocking lock around reading every point and writing the table, so that the last writer
    has read the latest state."""
    with writing(out):
        fd = os.open(out / ".report.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise UserError(f"DIR {out}: no {MANIFEST} (not a sweep folder)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"DIR {out}: {MANIFEST} is unreadable ({err})") from None
    if doc.get("format") != FORMAT:
        raise UserError(f"DIR {out}: {MANIFEST} is not a {FORMAT} manifest")
    return doc


def finished_points(out: Path, manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The measurements of finished points, in sweep order, and the names of those not finished."""
    done, missing = [], []
    for p in manifest["points"]:
        path = Path(out) / "runs" / p["name"] / POINT_FILE
        if path.is_file():
            done.append(json.loads(path.read_text()))
        else:
            missing.append(p["name"])
    return done, missing


def as_points(records: Sequence[dict[str, Any]]) -> list[Point]:
    return [Point(**r["point"]) for r in records]
