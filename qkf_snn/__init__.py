"""qkf-snn: QKFormer spiking transformers on snnTorch."""

__version__ = "0.1.0"
