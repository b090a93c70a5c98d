"""rich tables summarising a profile document (:mod:`.document`), for the terminal."""

from __future__ import annotations

from typing import Any

from qkf_snn.hardware.profile.document import arithmetic_of, energy_key
from qkf_snn.hardware.profile.document import compact as _n
from qkf_snn.hardware.profile.document import microjoules as _uj


def _table(title: str, columns: list[str], rows: list[list[str]], left: tuple[str, ...] = ()) -> Any:
    from rich.table import Table  # the CLI's dependency, imported when a table is drawn

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def rich_tables(doc: dict) -> list:
    """rich Tables summarising a profile document (the CLI prints them)."""
    p, t = doc["protocol"], doc["totals"]
    ps = t["per_sample"]
    name = p.get("model_name") or p["model"]
    head = [
        _n(ps["spikes"]),
        f"{ps['firing_rate']:.4f}",
        _n(ps["membrane_updates"]),
        _n(ps["exact_events"]),
        f"{ps['spikes_per_synapse']:.3f}",
    ]
    conv = [
        [k, _n(v["mac"]), _n(v["ac"]), _uj(v[energy_key(doc)]), _where(v)]
        for k, v in t["conventions"].items()
    ]
    energy = [
        [k, e["basis"], _uj(e["total_pj"]), _uj(e["ann_total_pj"])]
        for k, e in doc["energy"]["models"].items()
    ]
    layers = [
        [n["name"], _n(n["neurons"]), f"{n['firing_rate']:.4f}"] for n in doc["measurements"]["neurons"]
    ]
    tables = [
        _table(
            f"{name}: {p['samples']} samples, T = {p['time_steps']} (per sample); weights "
            f"{p.get('weight_precision', 'float32')}, energy at 45 nm {arithmetic_of(doc).upper()}",
            ["spikes", "firing rate", "membrane updates", "exact events", "spikes/synapse"],
            [head],
        ),
        _table(
            "Synaptic operations per sample, every convention",
            ["convention", "MAC", "AC", f"µJ @45nm {arithmetic_of(doc).upper()}", "scope"],
            conv,
            left=("convention", "scope"),
        ),
        _table(
            "Energy per sample", ["model", "basis", "SNN µJ", "ANN twin µJ"], energy, left=("model", "basis")
        ),
        _table("Neuron layers", ["layer", "neurons", "firing rate"], layers, left=("layer",)),
    ]
    unattributed = doc["measurements"]["unattributed"]
    if unattributed:
        rows = [[r["name"], r["op"], r["reason"]] for r in unattributed]
        columns = ["where", "op", "reason"]
        tables.append(_table("Unattributed (not counted)", columns, rows, left=tuple(columns)))
    return tables


def _where(totals: dict) -> str:
    if totals.get("split_level_products", 0):
        return f"split-level: {_n(totals['split_level_ac'])} AC (spike×spike products)"
    return "per sample"
