"""Small hand-built NIR graphs for the chip mapping tests (test_deploy.py, test_deploy_cli.py)."""

from __future__ import annotations

import nir
import numpy as np


def conv(w: np.ndarray, hw: tuple[int, int], padding: int = 0) -> nir.Conv2d:
    return nir.Conv2d(hw, w, stride=1, padding=padding, dilation=1, groups=1, bias=np.zeros(w.shape[0]))


def if_(shape: tuple[int, ...], threshold: float) -> nir.IF:
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, threshold))


def lif(shape: tuple[int, ...], threshold: float) -> nir.LIF:
    return nir.LIF(
        tau=np.full(shape, 2.0),
        r=np.ones(shape),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, threshold),
    )


def two_layer_conv(w1: np.ndarray | None = None) -> nir.NIRGraph:
    """[2,8,8] → conv 3×3 (4 ch) → IF θ=3 → conv 3×3 (3 ch, ones) → IF θ=5 → output [3,4,4]."""
    rng = np.random.default_rng(0)
    if w1 is None:  # integers in {-2,-1,1,2}, no zeros; channel 0 uses all four values
        w1 = rng.choice(np.array([-2.0, -1.0, 1.0, 2.0], dtype=np.float32), size=(4, 2, 3, 3))
        w1[0, 0, 0, :3], w1[0, 0, 1, 0] = (-2, -1, 1), 2
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
            "c1": conv(w1, (8, 8)),
            "l1": if_((4, 6, 6), 3.0),
            "c2": conv(np.ones((3, 4, 3, 3), dtype=np.float32), (6, 6)),
            "l2": if_((3, 4, 4), 5.0),
            "output": nir.Output(output_type={"output": np.array([3, 4, 4])}),
        },
        edges=[("input", "c1"), ("c1", "l1"), ("l1", "c2"), ("c2", "l2"), ("l2", "output")],
    )


def two_input_graph() -> nir.NIRGraph:
    """[4] → Affine A (3×4) → LIF a; [4] → Affine B (3×4) → LIF b; a, b → Threshold t (AND) → output."""
    a = np.arange(1, 13, dtype=np.float32).reshape(3, 4)  # 12 distinct nonzero integers, max 12
    b = -np.ones((3, 4), dtype=np.float32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "A": nir.Affine(a, np.zeros(3)),
            "B": nir.Affine(b, np.zeros(3)),
            "a": lif((3,), 4.0),
            "b": lif((3,), 4.0),
            "t": nir.Threshold(np.full((3,), 1.0)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[
            ("input", "A"),
            ("input", "B"),
            ("A", "a"),
            ("B", "b"),
            ("a", "t"),
            ("b", "t"),
            ("t", "output"),
        ],
    )


def chain(layers: int, channels: int = 2, hw: int = 4) -> nir.NIRGraph:
    """``layers`` × (1×1 conv of ones → IF θ=1) on [channels, hw, hw]."""
    shape = (channels, hw, hw)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, prev = [], "input"
    for i in range(layers):
        nodes[f"c{i}"] = conv(np.ones((channels, channels, 1, 1), dtype=np.float32), (hw, hw))
        nodes[f"l{i}"] = if_(shape, 1.0)
        edges += [(prev, f"c{i}"), (f"c{i}", f"l{i}")]
        prev = f"l{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)
