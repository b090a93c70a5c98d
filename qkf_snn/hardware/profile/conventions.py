"""Counting conventions, side by side, from one set of measurements.

- ``paper``: SOP_l = fr_l × T × FLOPs_l (Spikformer / Spike-driven Transformer / QKFormer), with the
  ambiguities exposed as :class:`CountOptions`.
- ``exact``: synaptic events = Σ |x| · true fan-out for spike and integer inputs (AC), non-zero
  inputs × fan-out for real-valued inputs (MAC); attention products as coincidence counts.
- ``neurobench``: NeuroBench 2.3 SynapticOperations (conv/linear only; AC when a call's input is in
  {-1, 0, 1}, else MAC; non-zero input × fan-out, without value weighting).
- ``spikingjelly``: SpikingJelly 2.0 SynOpCounter (conv/linear/matmul with {0, 1} inputs only).
- ``ann``: the ANN twin, every synaptic layer and product dense, one pass (T = 1).

All numbers are per sample. All but one are additive: a clip's count is the same whether it is
profiled alone or inside any batch or split, and a split's count is the mean of its clips'. The
exception is inherent to the paper rule for products of two spike tensors (Kᵀ·V, mask ⊙ K): it
prices them at min(fr_a, fr_b) of the *split's* firing rates, and a minimum of means is not a mean
of minima. Those rows are flagged ``split_level`` and their AC is reported apart (``SPLIT_LEVEL``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.records import ProductRecord, Profile, SynapseRecord

FirstLayer = Literal["T", "once"]
HeadMode = Literal["mac", "ac"]
IntegerMode = Literal["ac_count", "ac_rate", "mac"]

OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "first_layer": ("T", "once"),
    "head": ("mac", "ac"),
    "integer_inputs": ("ac_count", "ac_rate", "mac"),
}


@dataclass(frozen=True)
class CountOptions:
    """The paper convention's free choices.

    first_layer: layers with real-valued input (the stem conv) cost FLOPs × T MACs ("T", what is
        executed; the Spikingformer script) or FLOPs × 1 ("once", as papers write it; valid when the
        input repeats over time and the result is reused).
    head: the read-out Linear on token-averaged features as MAC (executed) or as AC at its input's
        non-zero rate.
    integer_inputs: layers reading the integer residual stream as ACs at the mean spike count per
        input ("ac_count": one AC per spike, Spikingformer script with Nspks_max > 1), as ACs at the
        non-zero share ("ac_rate": the stream treated as if binary, as Spikformer's fr), or as dense
        MACs ("mac": Spikingformer's recount, FLOPs × T).
    """

    first_layer: FirstLayer = "T"
    head: HeadMode = "mac"
    integer_inputs: IntegerMode = "ac_count"

    def __post_init__(self) -> None:
        for name, allowed in OPTION_VALUES.items():
            if getattr(self, name) not in allowed:
                raise UserError(
                    f"--{name.replace('_', '-')}: {getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class LayerCounts:
    """Operation counts of one synaptic layer or attention product under each convention."""

    name: str
    group: str
    kind: str  # synapse | product
    role: str  # analog | spike | integer | head | attention
    paper_mac: float
    paper_ac: float
    exact_mac: float
    exact_ac: float
    ann_mac: float  # ANN twin, one pass
    ann_ac: float  # ANN twin additions (the Sum of QKTA/QKCA)
    split_level: bool = False  # paper count from the split's firing rates: not additive per sample


SPLIT_LEVEL = (
    "split-level: spike×spike products are priced at min(fr_a, fr_b) of the split's firing rates "
    "(Spikformer's rule), so this part of a clip's number depends on the clips profiled with it"
)


def _integer_paper(
    rate_mean: float, rate_nonzero: float, dense: float, o: CountOptions
) -> tuple[float, float]:
    if o.integer_inputs == "ac_count":
        return 0.0, rate_mean * dense
    if o.integer_inputs == "ac_rate":
        return 0.0, rate_nonzero * dense
    return dense, 0.0


def synapse_counts(r: SynapseRecord, o: CountOptions) -> LayerCounts:
    steps = max(r.time_steps, 1)
    dense = r.dense_macs  # FLOPs × T
    if r.role == "analog":
        paper = (dense if o.first_layer == "T" else dense / steps, 0.0)
    elif r.role == "head":
        paper = (dense, 0.0) if o.head == "mac" else (0.0, r.input_nonzero_share * dense)
    elif r.role == "integer":
        paper = _integer_paper(r.input_mean, r.input_nonzero_share, dense, o)
    else:
        paper = (0.0, r.input_nonzero_share * dense)
    if r.input_kind == "real":
        exact = (r.events_nonzero, 0.0)
    else:
        exact = (0.0, r.events_value)
    return LayerCounts(r.name, r.group, "synapse", r.role, *paper, *exact, dense / steps, 0.0)


def product_counts(r: ProductRecord, o: CountOptions) -> LayerCounts:
    steps = max(r.time_steps, 1)
    dense = r.dense_ops
    kinds = [op.kind for op in r.operands]
    if r.op == "sum":
        op = r.operands[0]
        if op.kind == "spike":
            paper = (0.0, op.nonzero_share * dense)
        elif op.kind == "integer":
            paper = _integer_paper(op.mean, op.nonzero_share, dense, o)
        else:
            paper = (0.0, dense)
        exact = (0.0, r.events_value if op.kind != "real" else r.events_nonzero)
        return LayerCounts(r.name, r.group, "product", "attention", *paper, *exact, 0.0, dense / steps)
    # Products: Spikformer's rule. Both operands spikes: the lower rate (T·H·N·d²·min(fr_K, fr_V));
    # one spike operand: its rate (T·H·N·d²·fr_Q for Q·(KᵀV)); no spikes: dense MACs.
    spike_rates = [op.nonzero_share for op in r.operands if op.kind == "spike"]
    both = len(spike_rates) == len(kinds) > 1
    if len(spike_rates) == len(kinds):
        paper = (0.0, min(spike_rates) * dense)
    elif spike_rates:
        paper = (0.0, spike_rates[0] * dense)
    else:
        paper = (dense, 0.0)
    if "real" in kinds:
        exact = (r.events_nonzero, 0.0)
    else:
        exact = (0.0, r.events_value)
    return LayerCounts(r.name, r.group, "product", "attention", *paper, *exact, dense / steps, 0.0, both)


def layer_counts(profile: Profile, options: CountOptions) -> list[LayerCounts]:
    """Counts of every synaptic layer and attention product, in execution order."""
    rows = [synapse_counts(r, options) for r in profile.synapses]
    rows += [product_counts(r, options) for r in profile.products]
    return rows


def _sum(rows: list[LayerCounts], attr: str) -> float:
    return sum(getattr(r, attr) for r in rows)


def convention_totals(profile: Profile, options: CountOptions) -> dict[str, dict[str, float]]:
    """Per-sample MAC and AC totals of every convention (see module doc), plus the dense count
    each one is measured against."""
    rows = layer_counts(profile, options)
    syn = profile.synapses
    return {
        "paper": {
            "mac": _sum(rows, "paper_mac"),
            "ac": _sum(rows, "paper_ac"),
            "split_level_products": sum(r.split_level for r in rows),
            "split_level_ac": sum(r.paper_ac for r in rows if r.split_level),
        },
        "exact": {"mac": _sum(rows, "exact_mac"), "ac": _sum(rows, "exact_ac")},
        "neurobench": {
            "mac": sum(r.neurobench_mac for r in syn),
            "ac": sum(r.neurobench_ac for r in syn),
            "dense": sum(r.valid_connections for r in syn),
        },
        "spikingjelly": {
            "mac": 0.0,
            "ac": sum(r.spikingjelly_synops for r in syn)
            + sum(r.spikingjelly_synops for r in profile.products),
        },
        "ann": {"mac": _sum(rows, "ann_mac"), "ac": _sum(rows, "ann_ac")},
    }


def sensitivity(profile: Profile, options: CountOptions) -> list[dict[str, Any]]:
    """Paper-convention totals with one option changed at a time: how much each ambiguity moves."""
    out = []
    for name, values in OPTION_VALUES.items():
        for value in values:
            alt = replace(options, **{name: value})
            rows = layer_counts(profile, alt)
            out.append(
                {
                    "option": name,
                    "value": value,
                    "chosen": value == getattr(options, name),
                    "mac": _sum(rows, "paper_mac"),
                    "ac": _sum(rows, "paper_ac"),
                }
            )
    return out


def neuron_totals(profile: Profile) -> dict[str, float]:
    """Spikes, neurons and membrane updates per sample, kept apart from synaptic operations."""
    neurons = sum(n.neurons for n in profile.neurons)
    spikes = sum(n.spikes for n in profile.neurons)
    updates = sum(n.membrane_updates for n in profile.neurons)
    return {
        "neurons": neurons,
        "spikes": spikes,
        "membrane_updates": updates,
        "active_updates": sum(n.active_updates for n in profile.neurons),
        "firing_rate": spikes / updates if updates else 0.0,
    }


def spikes_per_synapse(profile: Profile) -> dict[str, Any]:
    """Synaptic events per synapse per inference on the event-driven layers (spike or integer
    input): exact value events / valid connections of one pass. Compare with the break-even
    thresholds in energy.BREAK_EVEN."""
    layers = [r for r in profile.synapses if r.input_kind != "real"]
    events = sum(r.events_value for r in layers)
    synapses = sum(r.valid_connections / max(r.time_steps, 1) for r in layers)
    return {
        "events": events,
        "synapses": synapses,
        "value": events / synapses if synapses else 0.0,
        "per_layer": {
            r.name: r.events_value / (r.valid_connections / max(r.time_steps, 1))
            if r.valid_connections
            else 0.0
            for r in layers
        },
    }
