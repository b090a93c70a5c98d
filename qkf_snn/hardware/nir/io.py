"""Reading and writing .nir files (HDF5) with one-line errors for files that are not usable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nir
import numpy as np

from qkf_snn.errors import UserError
from qkf_snn.io import atomic_path


def write_graph(path: str | Path, graph: nir.NIRGraph) -> Path:
    """Write ``graph`` atomically (a crash never leaves a half-written file under ``path``)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"--out {path}: directory {path.parent} does not exist")
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_graph(path: str | Path) -> nir.NIRGraph:
    """The graph stored in ``path``; a missing, truncated or malformed file raises one ``UserError`` line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such NIR file")
    try:
        graph = nir.read(path)
    except OSError as err:  # h5py: not HDF5, truncated, unreadable
        raise UserError(
            f"{path}: not a readable NIR (HDF5) file, truncated or corrupt ({_one_line(err)})"
        ) from None
    except Exception as err:  # missing groups, unknown node types, inconsistent shapes
        raise UserError(f"{path}: malformed NIR graph ({_one_line(err)})") from None
    if not isinstance(graph, nir.NIRGraph) or not graph.nodes:
        raise UserError(f"{path}: the file holds no NIR graph")
    if not graph.inputs or not graph.outputs:
        raise UserError(f"{path}: the NIR graph has no Input or no Output node")
    return graph


def plain(value: Any) -> Any:
    """A metadata value as plain Python (HDF5 returns bytes and numpy scalars)."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def metadata(node: nir.NIRNode) -> dict[str, Any]:
    """A node's (or graph's) metadata with plain Python values."""
    return {k: plain(v) for k, v in (node.metadata or {}).items()}
