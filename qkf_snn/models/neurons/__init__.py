"""Spiking neurons: snnTorch-based multi-step LIF / PLIF / IF / QIF, surrogates, backends."""

from qkf_snn.models.neurons.backends import (
    AUTO_ORDER,
    BACKENDS,
    register_backend,
    resolve_backend,
    set_backend,
)
from qkf_snn.models.neurons.config import NeuronConfig
from qkf_snn.models.neurons.lif import (
    IF,
    LIF,
    NEURONS,
    PLIF,
    QIF,
    MultiStepNeuron,
    effective_threshold,
    make_neuron,
    neuron_class,
    register_neuron,
)
from qkf_snn.models.neurons.relu import ReLU
from qkf_snn.models.neurons.surrogate import (
    SURROGATES,
    Surrogate,
    SurrogateSpec,
    surrogate_names,
    surrogate_spec,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "IF",
    "LIF",
    "NEURONS",
    "PLIF",
    "QIF",
    "ReLU",
    "SURROGATES",
    "MultiStepNeuron",
    "NeuronConfig",
    "Surrogate",
    "SurrogateSpec",
    "effective_threshold",
    "make_neuron",
    "neuron_class",
    "register_neuron",
    "register_backend",
    "resolve_backend",
    "set_backend",
    "surrogate_names",
    "surrogate_spec",
]
