"""Chip mapping report: does an exported NIR graph fit Loihi 2, SpiNNaker 2, Speck, Xylo, TrueNorth?"""

from qkf_snn.hardware.deployment.analysis import GraphFacts, Layer, analyse
from qkf_snn.hardware.deployment.check import DeployReport, PlatformReport, check_graph, markdown
from qkf_snn.hardware.deployment.packing import PACKERS, pack
from qkf_snn.hardware.deployment.platforms import PLATFORMS, Limit, Packing, Platform, get_platforms

__all__ = [
    "PACKERS",
    "PLATFORMS",
    "DeployReport",
    "GraphFacts",
    "Layer",
    "Limit",
    "Packing",
    "Platform",
    "PlatformReport",
    "analyse",
    "check_graph",
    "get_platforms",
    "markdown",
    "pack",
]
