"""The Markdown report of a profile document (:mod:`.document`): one function per section."""

from __future__ import annotations

from typing import Any

from qkf_snn.hardware.profile.document import PER_SAMPLE, arithmetic_of, energy_key, precision_line
from qkf_snn.hardware.profile.document import compact as _n
from qkf_snn.hardware.profile.document import microjoules as _uj


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")  # a bare | would split the cell


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _section(title: str, *body: str) -> list[str]:
    return [f"## {title}", "", *[part for text in body for part in (text, "")]]


def markdown(doc: dict) -> str:
    """A human-readable report of a profile document."""
    sections = (
        _protocol,
        _totals,
        _conventions,
        _energy,
        _break_even,
        _per_group,
        _neuron_layers,
        _synaptic_layers,
        _products,
        _others,
        _unattributed,
        _constants,
    )
    out = [line for section in sections for line in section(doc)]
    return "\n".join([*out, "Conventions and how to read this report: docs/energy.md.", ""])


def _protocol(doc: dict) -> list[str]:
    p = doc["protocol"]
    title = p.get("model_name") or p["model"]
    where = ", ".join(f"{k} `{p[k]}`" for k in ("checkpoint", "dataset", "split", "data_dir") if p.get(k))
    o = p["options"]
    return [
        f"# Spike, SOP and energy profile: {title}",
        "",
        f"Protocol: {where + '; ' if where else ''}{p['samples']} samples in {p['batches']} batches, "
        f"T = {p['time_steps']}, eval mode. Every count is **per sample** (divided by samples, not batches "
        f"or time steps). Paper-convention options: first layer ×{o['first_layer']}, head {o['head']}, "
        f"integer inputs {o['integer_inputs']}. Main energy model: `{doc['energy']['main']}`.",
        "",
        f"Precision assumed: {precision_line(doc)}.",
        "",
    ]


def _totals(doc: dict) -> list[str]:
    ps, steps = doc["totals"]["per_sample"], doc["totals"]["per_step"]
    header = [
        "neurons",
        "spikes",
        "firing rate",
        "membrane updates",
        "synaptic events (exact)",
        "ANN-twin MACs",
        "spikes per synapse",
    ]
    row = [
        _n(ps["neurons"]),
        _n(ps["spikes"]),
        f"{ps['firing_rate']:.4f}",
        _n(ps["membrane_updates"]),
        _n(ps["exact_events"]),
        _n(ps["ann_macs"]),
        f"{ps['spikes_per_synapse']:.3f}",
    ]
    out = _section("Totals per sample", _table(header, [row]))
    if steps["spikes"]:
        rows = [["spikes", *[_n(v) for v in steps["spikes"]]]]
        if steps["synaptic_events"]:
            rows.append(["synaptic events", *[_n(v) for v in steps["synaptic_events"]]])
        out += [_table(["time step", *[str(i) for i in range(len(steps["spikes"]))]], rows), ""]
    return out


def _conventions(doc: dict) -> list[str]:
    t = doc["totals"]
    conv = t["conventions"]
    rows = [
        [
            k,
            _n(v["mac"]),
            _n(v["ac"]),
            _uj(v[energy_key(doc)]),
            t["definitions"][k],
            v.get("scope", PER_SAMPLE),
        ]
        for k, v in conv.items()
    ]
    options = [
        [
            s["option"],
            s["value"] + (" (chosen)" if s["chosen"] else ""),
            _n(s["mac"]),
            _n(s["ac"]),
            _uj(4.6 * s["mac"] + 0.9 * s["ac"]),
        ]
        for s in t["sensitivity"]
    ]
    split = " (each partly split-level, as above):" if conv["paper"].get("split_level_products") else ":"
    return _section(
        "Synaptic operations: every convention side by side",
        _table(
            ["convention", "MAC", "AC", f"E @45 nm {arithmetic_of(doc).upper()} (µJ)", "definition", "scope"],
            rows,
        ),  # fmt: skip
        f"NeuroBench 'Dense' (valid connections, padding excluded): {_n(conv['neurobench']['dense'])}.",
        "Paper-convention totals with one option changed at a time" + split,
        _table(["option", "value", "MAC", "AC", "E @45 nm FP32 (µJ)"], options),
    )


def _energy(doc: dict) -> list[str]:
    rows = [
        [
            f"`{k}` {e['title']}",
            e["basis"],
            e["convention"],
            _uj(e["total_pj"]),
            _uj(e["ann_total_pj"]),
            f"{e['total_pj'] / e['ann_total_pj']:.3f}" if e["ann_total_pj"] else "–",
        ]
        for k, e in doc["energy"]["models"].items()
    ]
    header = ["model", "basis", "counts", "SNN (µJ)", "ANN twin (µJ)", "SNN / ANN"]
    return _section("Energy per sample by model", _table(header, rows))


def _break_even(doc: dict) -> list[str]:
    rows = [
        [
            b["source"],
            b["quantity"],
            f"{b['low']:g}" if b["low"] == b["high"] else f"{b['low']:g}–{b['high']:g}",
            f"{b['value']:.3g}",
            b["verdict"],
            b["meaning"],
        ]
        for b in doc["break_even"]["thresholds"]
    ]
    header = ["source", "quantity", "threshold", "this model", "verdict", "meaning"]
    return _section("Break-even", _table(header, rows))


def _per_group(doc: dict) -> list[str]:
    rows = [
        [
            g,
            _n(v.get("spikes")),
            f"{v.get('firing_rate', 0):.4f}",
            _n(v.get("paper_mac")),
            _n(v.get("paper_ac")),
            _n(v.get("exact_mac")),
            _n(v.get("exact_ac")),
            _uj(v.get(f"energy_{doc['energy']['main']}_pj")),
        ]
        for g, v in doc["groups"].items()
    ]
    header = ["group", "spikes", "firing rate", "paper MAC", "paper AC", "exact MAC", "exact AC", "E (µJ)"]
    return _section("Per group", _table(header, rows))


def _neuron_layers(doc: dict) -> list[str]:
    rows = [
        [
            n["name"],
            n["neuron"],
            n["threshold"],
            _n(n["neurons"]),
            _n(n["spikes"]),
            f"{n['firing_rate']:.4f}",
            " ".join(f"{r:.3f}" for r in n["firing_rate_per_step"] or []),
        ]
        for n in doc["measurements"]["neurons"]
    ]
    header = ["layer", "neuron", "θ", "neurons", "spikes", "firing rate", "rate per step"]
    return _section("Neuron layers", _table(header, rows))


def _synaptic_layers(doc: dict) -> list[str]:
    counts = {c["name"]: c for c in doc["counts"]}
    header = ["layer", "role", "input", "fr", "mean |x|", "ANN MAC/step", "paper MAC", "paper AC",
              "exact MAC", "exact AC", "NeuroBench AC", "SpikingJelly"]  # fmt: skip
    rows = []
    for s in doc["measurements"]["synapses"]:
        c = counts[s["name"]]
        rows.append(
            [
                s["name"],
                s["role"],
                s["input_kind"],
                f"{s['input_nonzero_share']:.4f}",
                f"{s['input_mean']:.4f}",
                _n(c["ann_mac"]),
                _n(c["paper_mac"]),
                _n(c["paper_ac"]),
                _n(c["exact_mac"]),
                _n(c["exact_ac"]),
                _n(s["neurobench_ac"]),
                _n(s["spikingjelly_synops"]),
            ]
        )
    return _section("Synaptic layers", _table(header, rows))


def _products(doc: dict) -> list[str]:
    products = doc["measurements"]["products"]
    if not products:
        return []
    counts = {c["name"]: c for c in doc["counts"]}
    header = ["product", "op", "operands (kind, fr)", "dense ops", "paper AC", "exact (coincidences)",
              "SpikingJelly"]  # fmt: skip
    rows = []
    for r in products:
        c = counts[r["name"]]
        rows.append(
            [
                r["name"],
                r["op"],
                "; ".join(f"{o['kind']} {o['nonzero_share']:.3f}" for o in r["operands"]),
                _n(r["dense_ops"]),
                _n(c["paper_ac"]) + (" (split-level)" if c.get("split_level") else ""),
                _n(c["exact_ac"] + c["exact_mac"]),
                _n(r["spikingjelly_synops"]),
            ]
        )
    return _section("Attention products", _table(header, rows))


def _others(doc: dict) -> list[str]:
    rows = [
        [r["name"], r["kind"], _n(r["count"]), r["unit"], r["note"]]
        for r in _merge_others(doc["measurements"]["others"])
    ]
    table = _table(["where", "kind", "count per sample", "unit", "note"], rows)
    return _section("Other operations (listed, not synaptic operations)", table)


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


def _unattributed(doc: dict) -> list[str]:
    m = doc["measurements"]
    if m["unattributed"]:
        rows = [
            [u["name"], u["cls"], u["op"], u["calls"], _n(u["elements_per_sample"]), u["reason"]]
            for u in m["unattributed"]
        ]
        text = _table(["where", "class", "op", "calls", "elements per sample", "reason"], rows)
    elif m["audited"]:
        text = "None: every arithmetic operator of the audited batch was attributed."
    else:
        text = "Functional operators were not audited (no module without a rule was found)."
    return _section("Unattributed", text)


def _constants(doc: dict) -> list[str]:
    rows = [
        [k, f"{c['value']:g}", c["unit"], c["basis"], c["source"], c["note"]]
        for k, c in doc["energy"]["constants"].items()
    ]
    return _section("Constants", _table(["constant", "value", "unit", "basis", "source", "note"], rows))
