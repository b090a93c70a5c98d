"""Profile reports: the versioned JSON document (schema in schema.md), a Markdown report and rich
tables, all rendered from the JSON document so a saved report can be re-rendered later."""

from __future__ import annotations

import datetime as _dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

import qkf_snn
from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.conventions import (
    SPLIT_LEVEL,
    CountOptions,
    convention_totals,
    layer_counts,
    neuron_totals,
    sensitivity,
    spikes_per_synapse,
)
from qkf_snn.hardware.profile.energy import CONSTANTS, REFERENCE_POINTS, break_even, estimate_energy
from qkf_snn.hardware.profile.records import Profile
from qkf_snn.io import atomic_write_bytes, writing

SCHEMA = "qkf-snn.profile"
SCHEMA_VERSION = 1

DEFINITIONS = {
    "paper": "SOP = fr × T × FLOPs (Spikformer/QKFormer); first layer, head and integer inputs per options",
    "exact": "Σ|x|·true fan-out for spike/integer inputs (AC); non-zero × fan-out for real inputs (MAC)",
    "neurobench": (
        "NeuroBench 2.3 SynapticOperations: conv/linear only, non-zero × fan-out; "
        "AC iff every input is -1, 0 or 1"
    ),
    "spikingjelly": "SpikingJelly 2.0 SynOpCounter: conv/linear/matmul on {0,1} inputs only",
    "ann": "ANN twin: every layer dense, one pass (T = 1)",
}
MAIN_ENERGY = "h45_fp32_exact"
PER_SAMPLE = "per sample: additive (a clip's number does not depend on the clips profiled with it)"


def scope(totals: dict[str, float]) -> str:
    """Whether a convention's total is additive per sample, or partly split-level (and how much)."""
    products = totals.get("split_level_products", 0)
    return (
        f"{SPLIT_LEVEL}: {products} products, {_n(totals['split_level_ac'])} of its AC"
        if products
        else PER_SAMPLE
    )


def build_report(
    profile: Profile, options: CountOptions | None = None, meta: dict[str, Any] | None = None
) -> dict:
    """The JSON document (schema v1) of a profile: measurements, counts, totals, energy."""
    options = options or CountOptions()
    counts = layer_counts(profile, options)
    conventions = convention_totals(profile, options)
    neurons = neuron_totals(profile)
    sps = spikes_per_synapse(profile)
    energy = estimate_energy(profile, options)
    for totals in conventions.values():
        totals["energy_h45_fp32_pj"] = (
            totals["mac"] * CONSTANTS["h45.fp32.mac"].value + totals["ac"] * CONSTANTS["h45.fp32.ac"].value
        )
        totals["scope"] = scope(totals)
    per_step = {
        "spikes": _sum_lists([n.spikes_per_step for n in profile.neurons]),
        "synaptic_events": _sum_lists(
            [s.events_per_step for s in profile.synapses if s.input_kind != "real"]
        ),
    }
    per_sample = {
        **neurons,
        "synaptic_layers": len(profile.synapses),
        "attention_products": len(profile.products),
        "ann_macs": conventions["ann"]["mac"],
        "valid_connections": conventions["neurobench"]["dense"],
        "exact_events": sum(s.events_value for s in profile.synapses if s.input_kind != "real"),
        "spikes_per_synapse": sps["value"],
    }
    split_counts = ("neurons", "spikes", "membrane_updates", "active_updates", "exact_events")
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "qkf_snn_version": qkf_snn.__version__,
        "torch_version": torch.__version__,
        "protocol": {
            "model": profile.model,
            **(meta or {}),
            "samples": profile.samples,
            "batches": profile.batches,
            "time_steps": profile.time_steps,
            "normalisation": "per sample: totals divided by the number of samples (not batches, not steps)",
            "options": options.to_dict(),
            "audited": profile.audited,
        },
        "totals": {
            "per_sample": per_sample,
            "split": {k: per_sample[k] * profile.samples for k in split_counts},
            "per_step": per_step,
            "conventions": conventions,
            "definitions": DEFINITIONS,
            "sensitivity": sensitivity(profile, options),
        },
        "groups": _groups(profile, counts, energy[MAIN_ENERGY].per_layer),
        "counts": [vars(c) for c in counts],
        "measurements": profile.to_dict(),
        "energy": {
            "main": MAIN_ENERGY,
            "models": {k: v.to_dict() for k, v in energy.items()},
            "constants": {k: vars(c) for k, c in CONSTANTS.items()},
            "reference_points": REFERENCE_POINTS,
        },
        "break_even": {
            "spikes_per_synapse": sps,
            "firing_rate": neurons["firing_rate"],
            "thresholds": break_even(sps["value"], neurons["firing_rate"]),
        },
    }


def _sum_lists(lists: list[list[float] | None]) -> list[float] | None:
    lists = [v for v in lists if v]
    if not lists or len({len(v) for v in lists}) != 1:
        return None
    return [sum(col) for col in zip(*lists, strict=True)]


def _groups(profile: Profile, counts, energy_per_layer: dict[str, float]) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for n in profile.neurons:
        g = groups[n.group]
        g["neurons"] += n.neurons
        g["spikes"] += n.spikes
        g["membrane_updates"] += n.membrane_updates
    for c in counts:
        g = groups[c.group]
        for key in ("paper_mac", "paper_ac", "exact_mac", "exact_ac", "ann_mac"):
            g[key] += getattr(c, key)
        g[f"energy_{MAIN_ENERGY}_pj"] += energy_per_layer.get(c.name, 0.0)
    for g in groups.values():
        g["firing_rate"] = g["spikes"] / g["membrane_updates"] if g.get("membrane_updates") else 0.0
    return {k: dict(v) for k, v in groups.items()}


def write_json(doc: dict, path: Path) -> Path:
    atomic_write_bytes(path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())
    return path


def load_report(path: str | Path) -> dict:
    """Read a profile JSON, checking its schema and version."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable profile JSON ({err})") from None
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        found = f"{doc.get('schema')} v{doc.get('schema_version')}"
        raise UserError(f"{path}: expected schema {SCHEMA} v{SCHEMA_VERSION}, got {found}")
    return doc


# --- Markdown ---------------------------------------------------------------------------------------


def _n(x: float | None) -> str:
    """Compact number: 1.23 G, 45.6 M, 7.89 k."""
    if x is None:
        return "–"
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def _uj(pj: float | None) -> str:
    return "–" if pj is None else f"{pj / 1e6:.4g}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")  # a bare | would split the cell


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    """A human-readable report of a profile document."""
    p, t = doc["protocol"], doc["totals"]
    ps, conv = t["per_sample"], t["conventions"]
    m = doc["measurements"]
    title = p.get("model_name") or p["model"]
    where = ", ".join(f"{k} `{p[k]}`" for k in ("checkpoint", "dataset", "split", "data_dir") if p.get(k))
    o = p["options"]
    out = [
        f"# Spike, SOP and energy profile: {title}",
        "",
        f"Protocol: {where + '; ' if where else ''}{p['samples']} samples in {p['batches']} batches, "
        f"T = {p['time_steps']}, eval mode. Every count is **per sample** (divided by samples, not batches "
        f"or time steps). Paper-convention options: first layer ×{o['first_layer']}, head {o['head']}, "
        f"integer inputs {o['integer_inputs']}. Main energy model: `{doc['energy']['main']}`.",
        "",
        "## Totals per sample",
        "",
        _table(
            [
                "neurons",
                "spikes",
                "firing rate",
                "membrane updates",
                "synaptic events (exact)",
                "ANN-twin MACs",
                "spikes per synapse",
            ],
            [
                [
                    _n(ps["neurons"]),
                    _n(ps["spikes"]),
                    f"{ps['firing_rate']:.4f}",
                    _n(ps["membrane_updates"]),
                    _n(ps["exact_events"]),
                    _n(ps["ann_macs"]),
                    f"{ps['spikes_per_synapse']:.3f}",
                ]
            ],
        ),  # fmt: skip
        "",
    ]
    if t["per_step"]["spikes"]:
        steps = t["per_step"]
        out += [
            _table(
                ["time step", *[str(i) for i in range(len(steps["spikes"]))]],
                [["spikes", *[_n(v) for v in steps["spikes"]]]]
                + (
                    [["synaptic events", *[_n(v) for v in steps["synaptic_events"]]]]
                    if steps["synaptic_events"]
                    else []
                ),
            ),
            "",
        ]
    out += [
        "## Synaptic operations: every convention side by side",
        "",
        _table(
            ["convention", "MAC", "AC", "E @45 nm FP32 (µJ)", "definition", "scope"],
            [
                [
                    k,
                    _n(v["mac"]),
                    _n(v["ac"]),
                    _uj(v["energy_h45_fp32_pj"]),
                    t["definitions"][k],
                    v.get("scope", PER_SAMPLE),
                ]
                for k, v in conv.items()
            ],
        ),  # fmt: skip
        "",
        f"NeuroBench 'Dense' (valid connections, padding excluded): {_n(conv['neurobench']['dense'])}.",
        "",
        "Paper-convention totals with one option changed at a time"
        + (" (each partly split-level, as above):" if conv["paper"].get("split_level_products") else ":"),
        "",
        _table(
            ["option", "value", "MAC", "AC", "E @45 nm FP32 (µJ)"],
            [
                [
                    s["option"],
                    s["value"] + (" (chosen)" if s["chosen"] else ""),
                    _n(s["mac"]),
                    _n(s["ac"]),
                    _uj(4.6 * s["mac"] + 0.9 * s["ac"]),
                ]
                for s in t["sensitivity"]
            ],
        ),  # fmt: skip
        "",
        "## Energy per sample by model",
        "",
        _table(
            ["model", "basis", "counts", "SNN (µJ)", "ANN twin (µJ)", "SNN / ANN"],
            [
                [
                    f"`{k}` {e['title']}",
                    e["basis"],
                    e["convention"],
                    _uj(e["total_pj"]),
                    _uj(e["ann_total_pj"]),
                    f"{e['total_pj'] / e['ann_total_pj']:.3f}" if e["ann_total_pj"] else "–",
                ]
                for k, e in doc["energy"]["models"].items()
            ],
        ),  # fmt: skip
        "",
        "## Break-even",
        "",
        _table(
            ["source", "quantity", "threshold", "this model", "verdict", "meaning"],
            [
                [
                    b["source"],
                    b["quantity"],
                    f"{b['low']:g}" if b["low"] == b["high"] else f"{b['low']:g}–{b['high']:g}",
                    f"{b['value']:.3g}",
                    b["verdict"],
                    b["meaning"],
                ]
                for b in doc["break_even"]["thresholds"]
            ],
        ),  # fmt: skip
        "",
        "## Per group",
        "",
        _table(
            ["group", "spikes", "firing rate", "paper MAC", "paper AC", "exact MAC", "exact AC", "E (µJ)"],
            [
                [
                    g,
                    _n(v.get("spikes")),
                    f"{v.get('firing_rate', 0):.4f}",
                    _n(v.get("paper_mac")),
                    _n(v.get("paper_ac")),
                    _n(v.get("exact_mac")),
                    _n(v.get("exact_ac")),
                    _uj(v.get(f"energy_{MAIN_ENERGY}_pj")),
                ]
                for g, v in doc["groups"].items()
            ],
        ),  # fmt: skip
        "",
        "## Neuron layers",
        "",
        _table(
            ["layer", "neuron", "θ", "neurons", "spikes", "firing rate", "rate per step"],
            [
                [
                    n["name"],
                    n["neuron"],
                    n["threshold"],
                    _n(n["neurons"]),
                    _n(n["spikes"]),
                    f"{n['firing_rate']:.4f}",
                    " ".join(f"{r:.3f}" for r in n["firing_rate_per_step"] or []),
                ]
                for n in m["neurons"]
            ],
        ),  # fmt: skip
        "",
        "## Synaptic layers",
        "",
    ]
    counts = {c["name"]: c for c in doc["counts"]}
    out += [
        _table(
            [
                "layer",
                "role",
                "input",
                "fr",
                "mean |x|",
                "ANN MAC/step",
                "paper MAC",
                "paper AC",
                "exact MAC",
                "exact AC",
                "NeuroBench AC",
                "SpikingJelly",
            ],
            [
                [
                    s["name"],
                    s["role"],
                    s["input_kind"],
                    f"{s['input_nonzero_share']:.4f}",
                    f"{s['input_mean']:.4f}",
                    _n(counts[s["name"]]["ann_mac"]),
                    _n(counts[s["name"]]["paper_mac"]),
                    _n(counts[s["name"]]["paper_ac"]),
                    _n(counts[s["name"]]["exact_mac"]),
                    _n(counts[s["name"]]["exact_ac"]),
                    _n(s["neurobench_ac"]),
                    _n(s["spikingjelly_synops"]),
                ]
                for s in m["synapses"]
            ],
        ),  # fmt: skip
        "",
    ]
    if m["products"]:
        out += [
            "## Attention products",
            "",
            _table(
                [
                    "product",
                    "op",
                    "operands (kind, fr)",
                    "dense ops",
                    "paper AC",
                    "exact (coincidences)",
                    "SpikingJelly",
                ],
                [
                    [
                        r["name"],
                        r["op"],
                        "; ".join(f"{o['kind']} {o['nonzero_share']:.3f}" for o in r["operands"]),
                        _n(r["dense_ops"]),
                        _n(counts[r["name"]]["paper_ac"])
                        + (" (split-level)" if counts[r["name"]].get("split_level") else ""),
                        _n(counts[r["name"]]["exact_ac"] + counts[r["name"]]["exact_mac"]),
                        _n(r["spikingjelly_synops"]),
                    ]
                    for r in m["products"]
                ],
            ),  # fmt: skip
            "",
        ]
    out += [
        "## Other operations (listed, not synaptic operations)",
        "",
        _table(
            ["where", "kind", "count per sample", "unit", "note"],
            [
                [r["name"], r["kind"], _n(r["count"]), r["unit"], r["note"]]
                for r in _merge_others(m["others"])
            ],
        ),
        "",
        "## Unattributed",
        "",
    ]
    if m["unattributed"]:
        out.append(
            _table(
                ["where", "class", "op", "calls", "elements per sample", "reason"],
                [
                    [u["name"], u["cls"], u["op"], u["calls"], _n(u["elements_per_sample"]), u["reason"]]
                    for u in m["unattributed"]
                ],
            )
        )
    elif m["audited"]:
        out.append("None: every arithmetic operator of the audited batch was attributed.")
    else:
        out.append("Functional operators were not audited (no module without a rule was found).")
    out += [
        "",
        "## Constants",
        "",
        _table(
            ["constant", "value", "unit", "basis", "source", "note"],
            [
                [k, f"{c['value']:g}", c["unit"], c["basis"], c["source"], c["note"]]
                for k, c in doc["energy"]["constants"].items()
            ],
        ),
        "",
        "Conventions and how to read this report: docs/energy.md.",
        "",
    ]
    return "\n".join(out)


def _merge_others(others: list[dict]) -> list[dict]:
    """Group BN and pooling rows by kind (one row each), keep functional rows as they are."""
    merged: dict[tuple, dict] = {}
    for r in others:
        key = (
            (r["kind"], r["unit"], r["note"])
            if r["kind"] in ("batchnorm", "maxpool")
            else (r["name"], r["kind"])
        )
        if key not in merged:
            merged[key] = dict(
                r, name=r["name"] if r["kind"] not in ("batchnorm", "maxpool") else "all", count=0.0
            )
        merged[key]["count"] += r["count"]
    return list(merged.values())


# --- terminal ---------------------------------------------------------------------------------------


def rich_tables(doc: dict) -> list:
    """rich Tables summarising a profile document (the CLI prints them)."""
    from rich.table import Table

    p, t = doc["protocol"], doc["totals"]
    ps = t["per_sample"]
    name = p.get("model_name") or p["model"]
    head = Table(title=f"{name}: {p['samples']} samples, T = {p['time_steps']} (per sample)")
    for col in ("spikes", "firing rate", "membrane updates", "exact events", "spikes/synapse"):
        head.add_column(col, justify="right")
    head.add_row(
        _n(ps["spikes"]),
        f"{ps['firing_rate']:.4f}",
        _n(ps["membrane_updates"]),
        _n(ps["exact_events"]),
        f"{ps['spikes_per_synapse']:.3f}",
    )
    conv = Table(title="Synaptic operations per sample, every convention")
    for col in ("convention", "MAC", "AC", "µJ @45nm FP32", "scope"):
        conv.add_column(col, justify="left" if col in ("convention", "scope") else "right")
    for k, v in t["conventions"].items():
        products = v.get("split_level_products", 0)
        where = (
            f"split-level: {_n(v['split_level_ac'])} AC (spike×spike products)" if products else "per sample"
        )
        conv.add_row(k, _n(v["mac"]), _n(v["ac"]), _uj(v["energy_h45_fp32_pj"]), where)
    energy = Table(title="Energy per sample")
    for col in ("model", "basis", "SNN µJ", "ANN twin µJ"):
        energy.add_column(col, justify="right" if "µJ" in col else "left")
    for k, e in doc["energy"]["models"].items():
        energy.add_row(k, e["basis"], _uj(e["total_pj"]), _uj(e["ann_total_pj"]))
    layers = Table(title="Neuron layers")
    for col in ("layer", "neurons", "firing rate"):
        layers.add_column(col, justify="left" if col == "layer" else "right")
    for n in doc["measurements"]["neurons"]:
        layers.add_row(n["name"], _n(n["neurons"]), f"{n['firing_rate']:.4f}")
    tables = [head, conv, energy, layers]
    unattributed = doc["measurements"]["unattributed"]
    if unattributed:
        u = Table(title="Unattributed (not counted)")
        for col in ("where", "op", "reason"):
            u.add_column(col)
        for r in unattributed:
            u.add_row(r["name"], r["op"], r["reason"])
        tables.append(u)
    return tables


def write_report(
    profile: Profile,
    out_dir: str | Path,
    options: CountOptions | None = None,
    meta: dict[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``profile.json``, ``profile.md`` and (optionally) the PNG plots into ``out_dir``."""
    out = Path(out_dir)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    doc = build_report(profile, options, meta)
    paths = {"json": write_json(doc, out / "profile.json")}
    paths["markdown"] = out / "profile.md"
    atomic_write_bytes(paths["markdown"], markdown(doc).encode())
    if plots:
        from qkf_snn.hardware.profile.plots import write_plots

        paths.update(write_plots(doc, out))
    return paths
