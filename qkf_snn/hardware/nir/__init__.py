"""NIR export of whole QKFormer classifiers and a bit-exact step-by-step check on Norse cells.

``build_graph`` / ``write_graph`` / ``read_graph`` (the .nir file; ``TARGETS``: its form per set of
readers), ``summarize`` (what a back end must provide), ``NorseExecutor`` (run a graph; ``READERS``:
stock readers as judges), ``verify_graph`` (compare with the PyTorch model),
``fold_batchnorm`` (the reference the graph must match). Conventions: ``docs/nir.md``.
"""

from qkf_snn.hardware.nir.export import CONVERTERS, NIRExportError, build_graph, export_problems, node_id
from qkf_snn.hardware.nir.fold import FoldReport, compare_folding, fold_batchnorm
from qkf_snn.hardware.nir.io import metadata, read_graph, write_graph
from qkf_snn.hardware.nir.nodes import DEFAULT_DT, neuron_to_nir
from qkf_snn.hardware.nir.norse_exec import NorseExecutor, node_map
from qkf_snn.hardware.nir.readers import READERS, Reader
from qkf_snn.hardware.nir.summary import GraphSummary, summarize
from qkf_snn.hardware.nir.targets import DEFAULT_TARGET, TARGETS, Target
from qkf_snn.hardware.nir.verify import VerifyReport, collate, topological_order, verify_graph

__all__ = [
    "CONVERTERS",
    "DEFAULT_DT",
    "DEFAULT_TARGET",
    "FoldReport",
    "GraphSummary",
    "NIRExportError",
    "NorseExecutor",
    "READERS",
    "Reader",
    "TARGETS",
    "Target",
    "VerifyReport",
    "build_graph",
    "collate",
    "compare_folding",
    "export_problems",
    "fold_batchnorm",
    "metadata",
    "neuron_to_nir",
    "node_id",
    "node_map",
    "read_graph",
    "summarize",
    "topological_order",
    "verify_graph",
    "write_graph",
]
