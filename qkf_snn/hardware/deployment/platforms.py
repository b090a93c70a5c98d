"""What each chip accepts: one table, one entry per platform, every limit with its source.

A limit of ``None`` means no public source was found for it: the constraint is listed with
``limit: "unknown (no public source found)"`` and ``pass: null`` and does not decide the verdict.
Numbers were read from the cited code (repository and commit) or publication; nothing is
interpolated. See docs/deployment.md for the same table in prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SINABS = "sinabs @ 904eb89 (github.com/synsense/sinabs)"
ROCKPOOL = "rockpool @ 42cee1c (github.com/synsense/rockpool), Xylo Audio 2 (syns61201)"
LOIHI2_BRIEF = (
    "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (brief, 2021), Table 1"
)
LOIHI2_OPEN = (
    "open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel "
    "(128 neuron cores, 1M neurons, 120M synapses)"
)
SPINNAKER2 = "Gonzalez et al., 'SpiNNaker2: a large-scale neuromorphic system', arXiv:2401.04491 (2024)"
SPINNAKER2_PE = "Höppner et al., 'The SpiNNaker 2 processing element architecture', arXiv:2103.08392 (2021)"
TRUENORTH = "Merolla et al., Science 345(6197):668, 2014, and its Supplementary Text S1 (neurosynaptic core)"
TRUENORTH_NEURON = "Cassidy et al., 'Cognitive computing building block', IJCNN 2013"

ANY = "*"  # a set limit that admits everything (programmable cores)


@dataclass(frozen=True)
class Limit:
    """One documented constraint: ``measure`` names a fact of :class:`~.analysis.GraphFacts` (or
    ``cores``, the packing's answer); ``test`` how the value meets the limit:

    - ``le``: value ≤ limit (a non-numeric value such as ``"float32"`` fails);
    - ``subset``: every element of the value is in the limit (``("*",)`` admits all).
    """

    name: str
    measure: str
    limit: Any  # None: unknown (no public source found)
    source: str
    test: str = "le"
    note: str = ""


@dataclass(frozen=True)
class Packing:
    """How layers are placed on cores (see :mod:`.packing`): ``rule`` names a packer."""

    rule: str
    cores_available: int
    neurons_per_core: int | None = None
    synapse_bytes_per_core: int | None = None
    outputs_per_core: int | None = None  # single_array: output neurons beside the hidden ones
    # dynapcnn: per core (kernel memory, neuron memory) in entries, from the vendor's mapper
    core_memories: tuple[tuple[int, int], ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Platform:
    key: str
    title: str
    packing: Packing
    limits: tuple[Limit, ...]
    energy: str | None = None  # key of qkf_snn.hardware.profile.energy.PLATFORMS, if it has one
    energy_note: str = ""
    notes: tuple[str, ...] = field(default=())


_DYNAPCNN_CORES = (
    (16 * 1024, 64 * 1024),
    (16 * 1024, 64 * 1024),
    (16 * 1024, 64 * 1024),
    (32 * 1024, 32 * 1024),
    (32 * 1024, 32 * 1024),
    (64 * 1024, 16 * 1024),
    (64 * 1024, 16 * 1024),
    (16 * 1024, 16 * 1024),
    (16 * 1024, 16 * 1024),
)

PLATFORMS: dict[str, Platform] = {
    "loihi2": Platform(
        key="loihi2",
        title="Intel Loihi 2 (one chip)",
        packing=Packing(
            rule="per_layer",
            cores_available=128,
            neurons_per_core=8192,
            source=f"{LOIHI2_BRIEF}: 128 neuro cores, up to 8,192 neurons per core (= 2^20 / 128); "
            "the per-core figure and the weight width are the brief's, not re-read from the PDF here",
        ),
        limits=(
            Limit("cores", "cores", 128, f"{LOIHI2_BRIEF}; {LOIHI2_OPEN}"),
            Limit("neurons per chip", "neurons", 1_048_576, f"{LOIHI2_BRIEF} (1M neurons); {LOIHI2_OPEN}"),
            Limit("synapses per chip", "synapses", 120_000_000, f"{LOIHI2_BRIEF}; {LOIHI2_OPEN}"),
            Limit(
                "weight bits",
                "weight_bits",
                8,
                f"{LOIHI2_BRIEF}: synaptic weights 1-8 bits",
                note="open-neuromorphic.org lists '<= 32-bit' weights; the brief's 8 bits is used",
            ),
            Limit("threshold bits", "threshold_bits", None, "unknown (no public source found)"),
            Limit("max fan-in", "max_fan_in", None, "unknown (no public source found)"),
            Limit("max fan-out", "max_fan_out", None, "unknown (no public source found)"),
            Limit(
                "neuron models",
                "neuron_models",
                (ANY,),
                f"{LOIHI2_BRIEF}: neuron models are microcode-programmable",
                test="subset",
            ),
            Limit("reset", "resets", (ANY,), f"{LOIHI2_BRIEF}: programmable neuron models", test="subset"),
        ),
        energy="loihi",
        energy_note="Loihi 1 pre-silicon constants (Davies et al. 2018): no public Loihi 2 per-op energy",
    ),
    "spinnaker2": Platform(
        key="spinnaker2",
        title="SpiNNaker 2 (one chip)",
        packing=Packing(
            rule="per_layer",
            cores_available=152,
            synapse_bytes_per_core=128 * 1024,
            source=f"{SPINNAKER2}: 152 processing elements per chip; {SPINNAKER2_PE}: 128 kB SRAM per PE",
        ),
        limits=(
            Limit("cores (PEs)", "cores", 152, SPINNAKER2),
            Limit(
                "neurons per PE",
                "max_layer_neurons",
                None,
                "unknown (no public source found): software-defined, depends on the neuron model",
            ),
            Limit(
                "weight bits",
                "weight_bits",
                None,
                "unknown (no public source found): software-defined on the ARM Cortex-M4F PEs",
            ),
            Limit("threshold bits", "threshold_bits", None, "unknown (no public source found)"),
            Limit("max fan-in", "max_fan_in", None, "unknown (no public source found)"),
            Limit("max fan-out", "max_fan_out", None, "unknown (no public source found)"),
            Limit(
                "neuron models",
                "neuron_models",
                (ANY,),
                f"{SPINNAKER2_PE}: neurons are software on ARM cores",
                test="subset",
            ),
            Limit("reset", "resets", (ANY,), f"{SPINNAKER2_PE}: neurons are software", test="subset"),
        ),
        energy="spinnaker2",
        energy_note="SpiNNaker 2 prototype constants (KerasSpiking table citing Höppner et al. 2019)",
    ),
    "speck": Platform(
        key="speck",
        title="SynSense Speck / DYNAP-CNN",
        packing=Packing(
            rule="dynapcnn",
            cores_available=9,
            core_memories=_DYNAPCNN_CORES,
            source=(
                f"{SINABS}: sinabs/backend/dynapcnn/chips/dynapcnn.py get_constraints (9 cores, kernel "
                "memory 16/16/16/32/32/64/64/16/16 Ki, neuron memory 64/64/64/32/32/16/16/16/16 Ki); "
                "memory per layer by dynapcnn_layer.py memory_summary; one layer per core"
            ),
        ),
        limits=(
            Limit("cores", "cores", 9, f"{SINABS}: chips/dynapcnn.py get_constraints"),
            Limit(
                "layers that fit no free core",
                "speck_unplaced",
                0,
                f"{SINABS}: dynapcnn_layer.py memory_summary vs chips/dynapcnn.py get_constraints",
            ),
            Limit(
                "destinations per layer (fan-out)",
                "max_destinations",
                2,
                f"{SINABS}: exceptions.py MaxDestinationsReached ('a maximum of two are allowed')",
            ),
            Limit(
                "inputs joined at one node",
                "max_node_inputs",
                2,
                f"{SINABS}: connectivity_specs.py (only Merge joins inputs) and nir_graph_extractor.py "
                "(a Merge takes 2 inputs)",
            ),
            Limit(
                "weight bits", "weight_bits", 8, f"{SINABS}: discretize.py DYNAPCNN_WEIGHT_PRECISION_BITS = 8"
            ),
            Limit(
                "threshold bits",
                "threshold_bits",
                16,
                f"{SINABS}: discretize.py DYNAPCNN_STATE_PRECISION_BITS = 16 (threshold is a state value)",
            ),
            Limit("max fan-in", "max_fan_in", None, "unknown (no public source found)"),
            Limit(
                "neuron models",
                "neuron_models",
                ("IF",),
                f"{SINABS}: connectivity_specs.py Neuron = (sl.IAFSqueeze,)",
                test="subset",
            ),
            Limit(
                "synaptic node types",
                "synaptic_types",
                ("Conv2d", "Linear", "Affine", "SumPool2d", "Flatten"),
                f"{SINABS}: connectivity_specs.py Weight = (Conv2d, Linear), Pooling = (SumPool2d, ...)",
                test="subset",
            ),
            Limit(
                "reset",
                "resets",
                ("to 0", "subtract"),
                f"{SINABS}: chips/dynapcnn.py return_to_zero (MembraneReset) or MembraneSubtract",
                test="subset",
            ),
        ),
        energy_note="no per-operation constant for Speck in the profiler's energy table",
    ),
    "xylo": Platform(
        key="xylo",
        title="SynSense Xylo Audio 2 (syns61201)",
        packing=Packing(
            rule="single_array",
            cores_available=1,
            neurons_per_core=1000,
            outputs_per_core=8,
            source=f"{ROCKPOOL}: xylo_mapper.py mapper(max_hidden_neurons=1000, max_output_neurons=8)",
        ),
        limits=(
            Limit("hidden neurons", "hidden_neurons", 1000, f"{ROCKPOOL}: xylo_mapper.py max_hidden_neurons"),
            Limit("output neurons", "output_neurons", 8, f"{ROCKPOOL}: xylo_mapper.py max_output_neurons"),
            Limit("input channels", "input_channels", 16, f"{ROCKPOOL}: xylo_mapper.py le_16_input_channels"),
            Limit(
                "neuron inputs not through a weight",
                "non_weight_neuron_inputs",
                0,
                f"{ROCKPOOL}: xylo_mapper.py DRC input_to_neurons_is_a_weight",
            ),
            Limit(
                "consecutive weight nodes",
                "consecutive_weights",
                0,
                f"{ROCKPOOL}: xylo_mapper.py DRC no_consecutive_weights",
            ),
            Limit("weight bits", "weight_bits", 8, f"{ROCKPOOL}: xylo_mapper.py weight_dtype 'int8'"),
            Limit(
                "threshold bits", "threshold_bits", 16, f"{ROCKPOOL}: xylo_mapper.py threshold_dtype 'int16'"
            ),
            Limit("max fan-in", "max_fan_in", None, "unknown (no public source found)"),
            Limit(
                "neuron models",
                "neuron_models",
                ("LIF", "CubaLIF"),
                f"{ROCKPOOL}: xylo_sim.py (LIF neurons with bit-shift decay and synaptic currents)",
                test="subset",
            ),
            Limit(
                "synaptic node types",
                "synaptic_types",
                ("Affine", "Linear"),
                f"{ROCKPOOL}: xylo_sim.py weights_in / weights_rec / weights_out are dense matrices",
                test="subset",
            ),
            Limit("reset", "resets", None, "unknown (no public source found)"),
        ),
        energy_note="the profiler's table has Xylo only as a per-inference reference point, not per op",
    ),
    "truenorth": Platform(
        key="truenorth",
        title="IBM TrueNorth (one chip)",
        packing=Packing(
            rule="per_layer",
            cores_available=4096,
            neurons_per_core=256,
            source=f"{TRUENORTH}: 4,096 cores of 256 neurons and 256 axons",
        ),
        limits=(
            Limit("cores", "cores", 4096, TRUENORTH),
            Limit("max fan-in (axons per core)", "max_fan_in", 256, f"{TRUENORTH}: 256 axons × 256 neurons"),
            Limit(
                "max fan-out (one axon, 256 neurons)",
                "max_fan_out",
                256,
                f"{TRUENORTH}: each neuron sends its spike to one axon",
            ),
            Limit(
                "distinct weights per neuron (axon types)",
                "distinct_weights_per_neuron",
                4,
                f"{TRUENORTH}: binary crossbar, axons of 4 types index a per-neuron weight",
                note="summed over the nodes feeding a layer: an upper bound when they share values",
            ),
            Limit(
                "weight bits",
                "weight_bits",
                None,
                "unknown (no public source found): integer per-type weights, width not found",
            ),
            Limit("threshold bits", "threshold_bits", None, "unknown (no public source found)"),
            Limit(
                "neuron models",
                "neuron_models",
                ("LIF", "IF"),
                f"{TRUENORTH_NEURON}: leaky integrate-and-fire with leak modes",
                test="subset",
            ),
            Limit(
                "reset",
                "resets",
                ("to 0", "to value", "subtract"),
                f"{TRUENORTH_NEURON}: six reset modes, among them reset to a value and linear reset",
                test="subset",
            ),
        ),
        energy="truenorth",
        energy_note="TrueNorth all-in constant per synaptic event (Merolla et al. 2014)",
    ),
}

UNKNOWN = "unknown (no public source found)"


def get_platforms(names: str) -> list[Platform]:
    """``"all"`` or comma-separated keys of :data:`PLATFORMS`; raises KeyError naming the unknown one."""
    keys = list(PLATFORMS) if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for k in keys:
        if k not in PLATFORMS:
            raise KeyError(k)
    return [PLATFORMS[k] for k in keys]
