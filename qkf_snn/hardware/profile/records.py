"""What a profile holds: one small record per layer, every count per sample (divided by the number
of samples seen, not by batches or time steps). Convention-dependent numbers (paper SOPs, energy)
are derived from these records in ``conventions.py`` and ``energy.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NeuronRecord:
    """A spiking-neuron layer."""

    name: str
    group: str  # first component of the name: encoder / modality / head
    cls: str
    neuron: str  # lif, plif, if, qif, or the class name
    threshold: float | None
    leak: bool  # β < 1: a multiplication per membrane update
    neurons: float  # neurons per sample (per time step)
    time_steps: int
    spikes: float  # per sample, all steps
    spikes_per_step: list[float] | None
    firing_rate: float  # spikes / (neurons · T)
    firing_rate_per_step: list[float] | None
    membrane_updates: float  # T · neurons: clock-driven, every neuron every step
    active_updates: float  # updates whose input current is non-zero
    binary_output: bool


@dataclass
class SynapseRecord:
    """A conv or linear layer, with the counts every convention needs."""

    name: str
    group: str
    cls: str
    op: str  # conv | linear
    role: str  # analog (real input: MAC layer) | spike | integer (residual stream) | head
    input_kind: str  # spike (a neuron's output) | integer (sum of spikes) | real: from structure (kinds.py)
    kernel: list[int]
    stride: list[int]
    groups: int
    fan_in: int
    out_channels: int
    weights: int
    bias: bool
    time_steps: int
    inputs_per_step: float  # input elements per sample per step
    outputs_per_step: float  # output elements per sample per step (membrane potentials fed)
    dense_macs: float  # ANN twin per sample over all steps, padding included (paper FLOPs × T)
    valid_connections: float  # same without padded positions (NeuroBench "Dense")
    input_nonzero_share: float  # paper firing rate fr
    input_mean: float  # mean |input| (spikes per input element for the integer stream)
    input_max: float  # largest |x| seen: a split-level maximum, not additive
    events_value: float  # Σ |x| · fan-out
    events_nonzero: float  # Σ 1[x≠0] · fan-out
    events_per_step: list[float] | None  # value events per step
    neurobench_ac: float
    neurobench_mac: float
    spikingjelly_synops: float


@dataclass
class OperandRecord:
    kind: str  # spike | integer | real (from the model's structure, kinds.py)
    nonzero_share: float
    mean: float  # mean |value|
    max: float  # max |value| seen: split-level


@dataclass
class ProductRecord:
    """An attention product: Mul (mask ⊙ K), MatMul (SSA), Sum (Q summed)."""

    name: str
    group: str
    cls: str
    op: str  # mul | matmul | sum
    operands: list[OperandRecord]
    time_steps: int
    dense_ops: float  # per sample over all steps: products (mul, matmul) or additions (sum)
    events_value: float  # value-weighted coincidences (AND counts for spikes)
    events_nonzero: float
    events_per_step: list[float] | None
    spikingjelly_synops: float


@dataclass
class OtherRecord:
    """Work outside synaptic operations and neurons: BN (folded), pooling, residual additions,
    readout averages. Listed with its count, excluded from SOPs."""

    name: str
    group: str
    cls: str
    kind: str  # batchnorm | maxpool | residual | readout | scale | fusion
    count: float  # per sample
    unit: str
    note: str


@dataclass
class UnattributedRecord:
    """An operator or module the profiler has no rule for: listed, never counted as zero."""

    name: str
    cls: str
    op: str
    calls: int
    elements_per_sample: float
    reason: str


@dataclass
class Profile:
    """Per-layer measurements of one model over some inputs."""

    model: str
    samples: int
    batches: int
    time_steps: int
    neurons: list[NeuronRecord] = field(default_factory=list)
    synapses: list[SynapseRecord] = field(default_factory=list)
    products: list[ProductRecord] = field(default_factory=list)
    others: list[OtherRecord] = field(default_factory=list)
    unattributed: list[UnattributedRecord] = field(default_factory=list)
    audited: bool = False  # whether functional ops were checked (first batch)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        data = dict(data)
        data["neurons"] = [NeuronRecord(**r) for r in data.get("neurons", [])]
        data["synapses"] = [SynapseRecord(**r) for r in data.get("synapses", [])]
        products = []
        for r in data.get("products", []):
            r = dict(r)
            r["operands"] = [OperandRecord(**o) for o in r["operands"]]
            products.append(ProductRecord(**r))
        data["products"] = products
        data["others"] = [OtherRecord(**r) for r in data.get("others", [])]
        data["unattributed"] = [UnattributedRecord(**r) for r in data.get("unattributed", [])]
        return cls(**data)
