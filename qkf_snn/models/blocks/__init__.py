"""QKFormer building blocks: conv-BN-spike units, patch embeddings, attention, MLP, block."""

from qkf_snn.models.blocks.attention import ATTENTION_THRESHOLD, QKAttention, SpikingSelfAttention
from qkf_snn.models.blocks.block import ATTENTIONS, QKFormerBlock, make_attention
from qkf_snn.models.blocks.conv import ConvBNSpike, merge_time
from qkf_snn.models.blocks.embed import STEMS, DownsampleEmbed, StemEmbed, StemSpec
from qkf_snn.models.blocks.mlp import SpikingMLP
from qkf_snn.models.blocks.ops import MatMul, Mul, Sum

__all__ = [
    "ATTENTIONS",
    "ATTENTION_THRESHOLD",
    "STEMS",
    "ConvBNSpike",
    "DownsampleEmbed",
    "MatMul",
    "Mul",
    "QKAttention",
    "QKFormerBlock",
    "SpikingMLP",
    "SpikingSelfAttention",
    "StemEmbed",
    "StemSpec",
    "Sum",
    "make_attention",
    "merge_time",
]
