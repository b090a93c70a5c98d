"""Models: snnTorch neurons, QKFormer blocks, encoders, fusion, and the registry."""

from qkf_snn.models.classifier import UniModalClassifier
from qkf_snn.models.neurons import NeuronConfig, make_neuron
from qkf_snn.models.qkformer import QKFormer, QKFormerConfig
from qkf_snn.models.registry import create_model, list_models, register_model
from qkf_snn.models.utils import count_parameters, recalibrate_bn

__all__ = [
    "NeuronConfig",
    "QKFormer",
    "QKFormerConfig",
    "UniModalClassifier",
    "count_parameters",
    "create_model",
    "list_models",
    "make_neuron",
    "recalibrate_bn",
    "register_model",
]
