"""The table and the plot of an energy sweep: per run and per setting (mean over seeds), the front
chosen on validation, and the lowest-energy setting within a tolerance of the unconstrained run.

Every file is written atomically; the report only ever describes finished points and lists the rest.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Any

from qkf_snn.io import atomic_write_bytes, atomic_write_json
from qkf_snn.sweep.energy import POINT_KINDS, finished_points, load_manifest
from qkf_snn.sweep.pareto import pareto_front

MAX_DROP_POINTS = 1.0  # the selection's tolerance: validation accuracy points below the unconstrained run
CSV_FIELDS = (
    "point", "seed", "kind", "value", "val_acc", "test_acc", "val_energy_uj", "test_energy_uj",
    "energy_vs_unconstrained", "val_acc_change_points", "val_firing_rate", "best_epoch", "epochs_run",
)  # fmt: skip


def build_report(out: Path, max_drop: float = MAX_DROP_POINTS) -> dict[str, Any]:
    """The report document of the sweep in ``out`` (finished points only)."""
    manifest = load_manifest(out)
    records, missing = finished_points(out, manifest)
    model = manifest["reported_model"]
    reference = {r["point"]["seed"]: r for r in records if r["point"]["kind"] == "unconstrained"}
    runs = [_run_row(r, reference.get(r["point"]["seed"]), model) for r in records]
    configs = _configs(runs)
    constrained = [c for c in configs if POINT_KINDS[c["kind"]].constrained]
    front_idx = pareto_front([(c["val_energy_uj"], c["val_acc"]) for c in constrained])
    front = [constrained[i]["config"] for i in front_idx]
    for c in configs:
        c["on_front"] = c["config"] in front
    base = next((c for c in configs if c["kind"] == "unconstrained"), None)
    for c in configs:  # against the unconstrained run's means (per seed: the run rows)
        c["energy_vs_unconstrained"] = c["val_energy_uj"] / base["val_energy_uj"] - 1 if base else None
        c["val_acc_change_points"] = 100 * (c["val_acc"] - base["val_acc"]) if base else None
    selected = None
    if base is not None:
        ok = [c for c in constrained if c["val_acc"] >= base["val_acc"] - max_drop / 100]
        best = min(ok, key=lambda c: (c["val_energy_uj"], -c["val_acc"]))
        selected = {
            "config": best["config"], "label": best["label"], "rule": (
                f"lowest validation energy among settings whose mean validation accuracy is at most "
                f"{max_drop:g} point(s) below the unconstrained run's"
            ),
            "val_acc": best["val_acc"], "test_acc": best["test_acc"], "val_energy_uj": best["val_energy_uj"],
            "energy_vs_unconstrained": best["val_energy_uj"] / base["val_energy_uj"] - 1,
            "val_acc_change_points": 100 * (best["val_acc"] - base["val_acc"]),
            "test_acc_change_points": 100 * (best["test_acc"] - base["test_acc"]),
        }  # fmt: skip
    protocol = (
        f"{manifest['dataset']} {manifest['modality']}; each run's best epoch chosen on validation accuracy "
        "(a budget run's among its epochs within the budget, if any), test evaluated once with that "
        "checkpoint; energy per sample and firing rate from the profiler on "
        f"that checkpoint (energy model {model}, default count options), front and selection on "
        f"validation; seeds {', '.join(str(s) for s in manifest['seeds'])}; means over seeds"
    )
    return {
        "format": "qkf-energy-front", "protocol": protocol, "energy_model": model,
        "dataset": manifest["dataset"], "modality": manifest["modality"], "seeds": manifest["seeds"],
        "runs": runs, "configs": configs, "front": front, "selected": selected, "missing": missing,
    }  # fmt: skip


def write_report(out: Path, max_drop: float = MAX_DROP_POINTS) -> dict[str, Any]:
    """``front.json``, ``front.csv``, ``front.md`` and ``pareto.png`` in ``out``; returns the document."""
    out = Path(out)
    doc = build_report(out, max_drop)
    atomic_write_json(out / "front.json", doc)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(doc["runs"])
    atomic_write_bytes(out / "front.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "front.md", markdown(doc).encode())
    if doc["configs"]:
        plot_front(doc, out / "pareto.png")
    return doc


# --- rows -------------------------------------------------------------------------------------------
def _run_row(r: dict[str, Any], ref: dict[str, Any] | None, model: str) -> dict[str, Any]:
    p = r["point"]
    e_val, e_test = r["val"]["energy_pj"][model], r["test"]["energy_pj"][model]
    row = {
        "point": p["name"], "seed": p["seed"], "kind": p["kind"], "value": p["value"], "label": r["label"],
        "config": p["name"].split("_", 1)[1], "val_acc": r["val"]["acc"], "test_acc": r["test"]["acc"],
        "val_energy_uj": e_val / 1e6, "test_energy_uj": e_test / 1e6,
        "val_firing_rate": r["val"]["firing_rate"], "test_firing_rate": r["test"]["firing_rate"],
        "best_epoch": r["best_epoch"] + 1, "epochs_run": r["epochs_run"],
        "energy_vs_unconstrained": None, "val_acc_change_points": None,
    }  # fmt: skip
    if ref is not None:
        row["energy_vs_unconstrained"] = e_val / ref["val"]["energy_pj"][model] - 1
        row["val_acc_change_points"] = 100 * (r["val"]["acc"] - ref["val"]["acc"])
    return row


def _configs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting, means (and sample std) over its seeds, in sweep order."""
    order: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        order.setdefault(row["config"], []).append(row)
    out = []
    for config, rows in order.items():
        c = {"config": config, "kind": rows[0]["kind"], "value": rows[0]["value"], "label": rows[0]["label"],
             "seeds": [r["seed"] for r in rows]}  # fmt: skip
        for key in ("val_acc", "test_acc", "val_energy_uj", "test_energy_uj", "val_firing_rate"):
            values = [r[key] for r in rows if r[key] is not None]
            c[key] = statistics.fmean(values) if values else None
            c[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(c)
    return out


# --- Markdown ---------------------------------------------------------------------------------------
def _pct(x: float | None, std: float | None = None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f} ± {100 * std:.1f}" if std is not None else f"{100 * x:.1f}"


def _signed(x: float | None, scale: float = 100, digits: int = 1) -> str:
    return "–" if x is None else f"{scale * x:+.{digits}f}"


def _uj(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Accuracy against energy: {doc['dataset']} {doc['modality']}", "", doc["protocol"] + ".", ""]
    lines += [
        "| setting | seeds | val acc (%) | test acc (%) | "
        f"energy / sample, val (µJ, {doc['energy_model']}) | vs unconstrained (energy %) | "
        "vs unconstrained (val acc, points) | firing rate (val) | on the front |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["configs"]:
        lines.append(
            f"| {c['label']} | {len(c['seeds'])} | {_pct(c['val_acc'], c['val_acc_std'])} | "
            f"{_pct(c['test_acc'], c['test_acc_std'])} | {_uj(c['val_energy_uj'])} | "
            f"{_signed(c['energy_vs_unconstrained'])} | {_signed(c['val_acc_change_points'], 1)} | "
            f"{_rate(c['val_firing_rate'])} | {'yes' if c['on_front'] else ''} |"
        )
    s = doc["selected"]
    if s is not None:
        lines += [
            "",
            f"Selected on validation ({s['rule']}): **{s['label']}**: "
            f"{_signed(s['energy_vs_unconstrained'])} % energy per sample, "
            f"{s['val_acc_change_points']:+.1f} points of validation accuracy and "
            f"{s['test_acc_change_points']:+.1f} of test accuracy against the unconstrained run "
            f"(test accuracy {100 * s['test_acc']:.1f} %).",
        ]
    lines += [
        "",
        "Per run:",
        "",
        "| run | val acc (%) | test acc (%) | energy val (µJ) | energy test (µJ) "
        "| energy vs unconstrained (%) | val acc vs unconstrained (points) | firing rate val "
        "| firing rate test | best epoch / epochs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        lines.append(
            f"| {r['point']} | {_pct(r['val_acc'])} | {_pct(r['test_acc'])} | {_uj(r['val_energy_uj'])} | "
            f"{_uj(r['test_energy_uj'])} | {_signed(r['energy_vs_unconstrained'])} | "
            f"{_signed(r['val_acc_change_points'], 1)} | {_rate(r['val_firing_rate'])} | "
            f"{_rate(r['test_firing_rate'])} | {r['best_epoch']} / {r['epochs_run']} |"
        )
    if doc["missing"]:
        lines += ["", f"Not finished yet: {', '.join(doc['missing'])}."]
    return "\n".join(lines) + "\n"


# --- the plot ---------------------------------------------------------------------------------------
def plot_front(doc: dict[str, Any], path: Path) -> None:
    """Accuracy against energy per sample, validation (where the front is chosen) and test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qkf_snn.io import atomic_savefig

    configs, by_config = doc["configs"], {c["config"]: c for c in doc["configs"]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, split in zip(axes, ("val", "test"), strict=True):
        for r in doc["runs"]:  # every seed, faint
            ax.plot(r[f"{split}_energy_uj"], 100 * r[f"{split}_acc"], ".", color="0.7", zorder=1)
        front = [by_config[k] for k in doc["front"]]
        ax.plot([c[f"{split}_energy_uj"] for c in front], [100 * c[f"{split}_acc"] for c in front], "-",
                color="C0", zorder=2, label="front (chosen on validation)")  # fmt: skip
        for c in configs:
            x, y = c[f"{split}_energy_uj"], 100 * c[f"{split}_acc"]
            style = {"unconstrained": ("*", "C3", 14), "relu": ("s", "C2", 8)}.get(c["kind"], ("o", "C0", 6))
            marker, color, size = style
            face = color if c["on_front"] or c["kind"] in ("unconstrained", "relu") else "white"
            ax.plot(x, y, marker, color=color, markerfacecolor=face, markersize=size, zorder=3,
                    label=c["label"] if c["kind"] in ("unconstrained", "relu") else None)  # fmt: skip
            if c["kind"] not in ("unconstrained", "relu"):
                ax.annotate(c["value"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"energy per sample, {split} split (µJ, {doc['energy_model']})")
        ax.set_title(f"{split}" + (" (selection)" if split == "val" else " (evaluated once)"))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8, loc="lower right")
    seeds = ", ".join(str(s) for s in doc["seeds"])
    fig.suptitle(
        f"{doc['dataset']} {doc['modality']}: accuracy against energy (seeds {seeds}; mean over seeds)"
    )
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
