"""The profile document: a :class:`Profile` and its counts, totals and energy as one JSON-ready dict
(schema v1, described in schema.md). Renderers (Markdown, terminal) read only this document, so a
saved report can be rendered again later."""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from typing import Any

import torch

import qkf_snn
from qkf_snn.hardware.profile.conventions import (
    SPLIT_LEVEL,
    CountOptions,
    convention_totals,
    layer_counts,
    neuron_totals,
    sensitivity,
    spikes_per_synapse,
)
from qkf_snn.hardware.profile.energy import (
    CONSTANTS,
    REFERENCE_POINTS,
    arithmetic_for,
    break_even,
    estimate_energy,
)
from qkf_snn.hardware.profile.records import Profile

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
MAIN_ENERGY = "h45_fp32_exact"  # float32 models; a quantized one is priced by main_energy()


def main_energy(profile: Profile) -> tuple[str, str, str]:
    """``(energy model, arithmetic, why)`` for the profiled model: exact counts at 45 nm, in the
    arithmetic its weights call for (INT8 for a model quantized to at most 8 bits)."""
    arithmetic, why = arithmetic_for(profile.meta.get("weight_bits"))
    return f"h45_{arithmetic}_exact", arithmetic, why


PER_SAMPLE = "per sample: additive (a clip's number does not depend on the clips profiled with it)"


def arithmetic_of(doc: dict) -> str:
    """The arithmetic a profile document's main energy assumes (``fp32`` in reports saved before
    quantized models were profiled)."""
    return doc["energy"].get("arithmetic", "fp32")


def energy_key(doc: dict) -> str:
    """Per-convention totals key of the energy in the document's own arithmetic."""
    return f"energy_h45_{arithmetic_of(doc)}_pj"


def precision_line(doc: dict) -> str:
    """One sentence: the model's weight precision and the arithmetic its energy was priced with."""
    p = doc["protocol"]
    why = p.get("arithmetic_reason", "45 nm FP32 MAC/AC constants (h45.fp32.*)")
    return f"weights {p.get('weight_precision', 'float32')}; energy priced with {why}"


def compact(x: float | None) -> str:
    """Compact number: 1.23 G, 45.6 M, 7.89 k."""
    if x is None:
        return "–"
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def microjoules(pj: float | None) -> str:
    """Picojoules shown in µJ."""
    return "–" if pj is None else f"{pj / 1e6:.4g}"


def scope(totals: dict[str, float]) -> str:
    """Whether a convention's total is additive per sample, or partly split-level (and how much)."""
    products = totals.get("split_level_products", 0)
    return (
        f"{SPLIT_LEVEL}: {products} products, {compact(totals['split_level_ac'])} of its AC"
        if products
        else PER_SAMPLE
    )


def build_report(
    profile: Profile, options: CountOptions | None = None, meta: dict[str, Any] | None = None
) -> dict:
    """The JSON document (schema v1) of a profile: measurements, counts, totals, energy."""
    options = options or CountOptions()
    counts = layer_counts(profile, options)
    energy = estimate_energy(profile, options)
    sps = spikes_per_synapse(profile)
    main, arithmetic, why = main_energy(profile)
    totals = _totals(profile, options, sps, arithmetic)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "qkf_snn_version": qkf_snn.__version__,
        "torch_version": torch.__version__,
        "protocol": {
            **_protocol(profile, options, meta),
            "weight_precision": profile.meta.get("weight_precision", "float32"),
            "arithmetic": arithmetic,
            "arithmetic_reason": why,
        },
        "totals": totals,
        "groups": _groups(profile, counts, energy[main].per_layer, main),
        "counts": [vars(c) for c in counts],
        "measurements": profile.to_dict(),
        "energy": {
            "main": main,
            "arithmetic": arithmetic,
            "models": {k: v.to_dict() for k, v in energy.items()},
            "constants": {k: vars(c) for k, c in CONSTANTS.items()},
            "reference_points": REFERENCE_POINTS,
        },
        "break_even": {
            "spikes_per_synapse": sps,
            "firing_rate": totals["per_sample"]["firing_rate"],
            "thresholds": break_even(sps["value"], totals["per_sample"]["firing_rate"]),
        },
    }


def _protocol(profile: Profile, options: CountOptions, meta: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": profile.model,
        **(meta or {}),
        "samples": profile.samples,
        "batches": profile.batches,
        "time_steps": profile.time_steps,
        "normalisation": "per sample: totals divided by the number of samples (not batches, not steps)",
        "options": options.to_dict(),
        "audited": profile.audited,
    }


def _totals(profile: Profile, options: CountOptions, sps: dict[str, Any], arithmetic: str) -> dict[str, Any]:
    """Per sample, for the whole split, per step, per convention (with its energy at 45 nm: FP32, and
    in the model's own ``arithmetic``)."""
    conventions = convention_totals(profile, options)
    for totals in conventions.values():
        for precision in dict.fromkeys(("fp32", arithmetic)):
            totals[f"energy_h45_{precision}_pj"] = (
                totals["mac"] * CONSTANTS[f"h45.{precision}.mac"].value
                + totals["ac"] * CONSTANTS[f"h45.{precision}.ac"].value
            )
        totals["scope"] = scope(totals)
    per_step = {
        "spikes": _sum_lists([n.spikes_per_step for n in profile.neurons]),
        "synaptic_events": _sum_lists(
            [s.events_per_step for s in profile.synapses if s.input_kind != "real"]
        ),
    }
    per_sample = {
        **neuron_totals(profile),
        "synaptic_layers": len(profile.synapses),
        "attention_products": len(profile.products),
        "ann_macs": conventions["ann"]["mac"],
        "valid_connections": conventions["neurobench"]["dense"],
        "exact_events": sum(s.events_value for s in profile.synapses if s.input_kind != "real"),
        "spikes_per_synapse": sps["value"],
    }
    split_counts = ("neurons", "spikes", "membrane_updates", "active_updates", "exact_events")
    return {
        "per_sample": per_sample,
        "split": {k: per_sample[k] * profile.samples for k in split_counts},
        "per_step": per_step,
        "conventions": conventions,
        "definitions": DEFINITIONS,
        "sensitivity": sensitivity(profile, options),
    }


def _sum_lists(lists: list[list[float] | None]) -> list[float] | None:
    lists = [v for v in lists if v]
    if not lists or len({len(v) for v in lists}) != 1:
        return None
    return [sum(col) for col in zip(*lists, strict=True)]


def _groups(
    profile: Profile, counts, energy_per_layer: dict[str, float], main: str
) -> dict[str, dict[str, float]]:
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
        g[f"energy_{main}_pj"] += energy_per_layer.get(c.name, 0.0)
    for g in groups.values():
        g["firing_rate"] = g["spikes"] / g["membrane_updates"] if g.get("membrane_updates") else 0.0
    return {k: dict(v) for k, v in groups.items()}
