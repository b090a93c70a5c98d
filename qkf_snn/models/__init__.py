"""Models: snnTorch neurons, QKFormer blocks, encoders, fusion, and the registry."""

from qkf_snn.models.neurons import NeuronConfig, make_neuron
from qkf_snn.models.qkformer import QKFormer, QKFormerConfig
from qkf_snn.models.registry import create_model, list_models, register_model

__all__ = [
    "NeuronConfig",
    "QKFormer",
    "QKFormerConfig",
    "create_model",
    "list_models",
    "make_neuron",
    "register_model",
]
