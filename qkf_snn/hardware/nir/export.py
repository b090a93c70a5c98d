"""A whole QKFormer classifier (one encoder, or two plus fusion) as one flat NIR graph.

The graph is built from the module structure, not traced: ``CONVERTERS`` maps each block class to
a small function that adds its NIR nodes and returns a :class:`Flow`, the list of nodes whose
outputs, *summed*, form the block's output. The integer residual stream never becomes a node: every
consumer of ``x + attn(x) + mlp(…)`` simply receives one edge per spike source (NIR sums the edges
into a node). Node names are the PyTorch module paths (``audio.stages.0.blocks.0.attn.q.lif``);
nodes that stand for one module's output carry its path in ``metadata["torch_module"]``, which is
how ``verify`` lines them up with the PyTorch model.

Mapping (one time step, shapes ``[C, H, W]`` without batch):

- Conv → BN → LIF: ``Conv2d`` (BN folded, see :mod:`.fold`) → ``LIF``/``IF`` (:mod:`.nodes`);
  the 1×1 ``Conv1d`` token projections become 1×1 ``Conv2d`` on the token grid.
- Max-pool over spikes (an OR): ``SumPool2d`` (same window) → ``Threshold(0.5)``.
- QKTA: ``Conv2d`` 1×1 with ones (channels of a head → one channel per head) → attention
  ``LIF`` (θ = 0.5) → ``Conv2d`` 1×1 with ones (head → its channels) ; that and K into
  ``Threshold(1.5)`` = mask AND K.
- QKCA: ``SumPool2d`` over all tokens → attention ``LIF`` on ``[C, 1, 1]`` → ``Conv2d`` with a
  kernel of ones per channel (H×W, padding (H−1, W−1) on square grids), which copies each
  channel's mask to every token ; that and K into ``Threshold(1.5)``.
- Cross-modal QK fusion: QKCA with Q from the other modality (its token sum, attention ``LIF``, then
  the channel mask copied onto this modality's token grid).
- Read-out: ``SumPool2d`` over all tokens → ``Flatten`` → ``Affine(W/N, b)``: per-step logits
  (token mean folded into the weights). AV: one Affine/Linear per encoder into ``Scale(1)`` named
  ``logits``. The model's output is the mean of the per-step logits over T, outside the graph.

Anything else (SSA, max-pool over analog values, subtract reset, QIF, ...) is collected as one
line per module and raised together as :class:`NIRExportError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import nir
import numpy as np
import torch
from torch import nn

from qkf_snn import __version__ as _version
from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.fold import folded_conv_params
from qkf_snn.hardware.nir.nodes import (
    discrete_params,
    neuron_problem,
    neuron_to_nir,
    reader_problem,
    threshold_as_lif,
)
from qkf_snn.hardware.nir.summary import pair
from qkf_snn.hardware.nir.targets import DEFAULT_TARGET, Target, get_target
from qkf_snn.models.blocks import (
    ConvBNSpike,
    DownsampleEmbed,
    QKAttention,
    QKFormerBlock,
    SpikingMLP,
    SpikingSelfAttention,
    StemEmbed,
)
from qkf_snn.models.classifier import UniModalClassifier
from qkf_snn.models.fusion import AVClassifier, CrossModalQKAttention
from qkf_snn.models.neurons import MultiStepNeuron
from qkf_snn.models.qkformer import QKFormer, Stage

QUANT_CONVENTION = (
    "weights and biases are integers (weights symmetric, |Q| <= 2^(bits-1)-1); the float model's weights "
    "are s*Q with s = 2^k per output channel or layer, folded into the following neuron's threshold "
    "(v_threshold = threshold'/s; tau, r, v_reset = 0 unchanged); output * output_scale = the logits"
)
MASK_THRESHOLD = 1.5  # mask + K ∈ {0, 1, 2}: > 1.5 exactly when both spiked (AND)
POOL_THRESHOLD = 0.5  # spike count in the window > 0.5: at least one spike (OR = max over spikes)
FORMAT = "qkf-snn/nir-2"  # bump when the conventions below change (2: identifier names, no Scale, targets)


class NIRExportError(UserError):
    """The model has modules without an NIR form; ``problems`` holds one line per module."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"cannot export to NIR: {len(problems)} module(s) have no NIR form\n{lines}")


@dataclass(frozen=True)
class Flow:
    """A tensor of the graph: the nodes whose outputs, summed, form it, and its per-step shape."""

    sources: tuple[str, ...]
    shape: tuple[int, ...]

    def __add__(self, other: Flow) -> Flow:  # the residual stream: x + f(x)
        if self.shape != other.shape:
            raise ValueError(f"cannot add flows of shapes {self.shape} and {other.shape}")
        return Flow(self.sources + other.sources, self.shape)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def node_id(path: str) -> str:
    """The node name of a module path: a Python identifier without dots (nirtorch and the stock
    readers build torch modules and fx code from node names). The path stays in metadata["path"]."""
    name = path.replace(".", "_")
    if not name.isidentifier():
        raise ValueError(f"module path {path!r} gives no identifier node name")
    return name


def _out_hw(hw: tuple[int, int], kernel, stride, padding) -> tuple[int, int]:
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(hw, kernel, stride, padding, strict=True))


class GraphBuilder:
    """Collects nodes, edges and problems while converters walk the model."""

    def __init__(self, dt: float, target: Target) -> None:
        self.dt = dt
        self.target = target
        self.nodes: dict[str, nir.NIRNode] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}  # output shape per node
        self.edges: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.output_scale = 1.0  # graph output × this = the model's logits (quantized read-out)

    def add(
        self, name: str, node: nir.NIRNode, x: Flow | None, shape: tuple[int, ...], module: str = ""
    ) -> Flow:
        path, name = name, node_id(name)
        if name in self.nodes:
            raise ValueError(f"duplicate NIR node name {name!r}")
        node.metadata["path"] = path
        if module:
            node.metadata["torch_module"] = module
        self.nodes[name] = node
        self.shapes[name] = tuple(int(s) for s in shape)
        for source in x.sources if x is not None else ():
            self.edges.append((source, name))
        return Flow((name,), tuple(int(s) for s in shape))

    def problem(self, path: str, why: str) -> None:
        self.problems.append(f"{path or '<model>'}: {why}")

    def convert(self, module: nn.Module, path: str, x: Flow) -> Flow:
        for cls in type(module).__mro__:
            if cls in CONVERTERS:
                return CONVERTERS[cls](self, module, path, x)
        self.problem(path, f"{type(module).__name__} has no NIR converter")
        return x

    # -- shared pieces ---------------------------------------------------------------------------
    def neuron_problem(self, neuron: MultiStepNeuron) -> str | None:
        """Why ``neuron`` has no exact form in this target's readers, or None."""
        why = neuron_problem(neuron)
        if why or not self.target.neuron_readers:
            return why
        p = discrete_params(neuron)
        return reader_problem(p.beta, p.gain, self.dt, self.target.neuron_readers)

    def neuron(self, lif: MultiStepNeuron, path: str, x: Flow, scale: np.ndarray | None = None) -> Flow:
        """``scale``: the per-channel weight scale of a quantized conv feeding the neuron, folded into
        its threshold (see :mod:`qkf_snn.models.quant`)."""
        node = neuron_to_nir(lif, x.shape, self.dt, self.target.neuron_readers, threshold_scale=scale)
        return self.add(path, node, x, x.shape, module=path)

    def conv(
        self,
        name: str,
        weight: np.ndarray,
        bias: np.ndarray,
        x: Flow,
        *,
        stride=1,
        padding=0,
        module: str = "",
    ) -> Flow:
        stride, padding = pair(stride), pair(padding)
        hw = _out_hw(x.shape[1:], weight.shape[2:], stride, padding)
        node = nir.Conv2d(
            input_shape=tuple(x.shape[1:]),
            weight=weight.astype(np.float32),
            stride=stride,
            padding=padding,
            dilation=1,
            groups=1,
            bias=bias.astype(np.float32),
        )
        return self.add(name, node, x, (weight.shape[0], *hw), module=module)

    def sum_conv(
        self,
        name: str,
        x: Flow,
        kernel,
        stride,
        padding,
        out_channels: int | None = None,
        offset: int = 0,
        module: str = "",
    ) -> Flow:
        """Sum pooling as a Conv2d with 0/1 weights: channel c of ``x`` summed over each window into
        output channel ``offset + c`` (exact: sums of spike counts). Readers keep a conv's padding."""
        kernel = pair(kernel)
        C = x.shape[0]
        if kernel[0] != kernel[1]:  # NIR 1.0.8 sizes a Conv2d's output from weight.shape[2] only
            self.problem(name, f"a {kernel[0]}×{kernel[1]} sum has no Conv2d form here (square kernels only)")
        weight = np.zeros((out_channels or C, C, *kernel))
        weight[offset + np.arange(C), np.arange(C)] = 1.0
        return self.conv(
            name, weight, np.zeros(weight.shape[0]), x, stride=stride, padding=padding, module=module
        )

    def sum_pool(self, name: str, x: Flow, kernel, stride, padding, module: str = "") -> Flow:
        kernel, stride, padding = pair(kernel), pair(stride), pair(padding)
        if not self.target.sum_pool_node:
            return self.sum_conv(name, x, kernel, stride, padding, module=module)
        node = nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding))
        return self.add(name, node, x, (x.shape[0], *_out_hw(x.shape[1:], kernel, stride, padding)), module)

    def threshold(self, name: str, value: float, x: Flow, module: str = "") -> Flow:
        if self.target.threshold_node:
            node = nir.Threshold(threshold=np.full(x.shape, value, dtype=np.float32))
        else:
            node = threshold_as_lif(value, x.shape, self.dt, self.target.neuron_readers)
        return self.add(name, node, x, x.shape, module=module)


# -- converters: (builder, module, path, input flow) -> output flow ----------------------------------
def _conv_bn_spike(b: GraphBuilder, m: ConvBNSpike, path: str, x: Flow) -> Flow:
    conv = m.conv
    problems = len(b.problems)
    if isinstance(conv, nn.Conv1d) and (conv.kernel_size != (1,) or conv.stride != (1,)):
        b.problem(_join(path, "conv"), "a Conv1d over flattened tokens is a 2-D conv only when 1×1")
    elif isinstance(conv, nn.Conv2d) and (
        conv.dilation != (1, 1) or conv.groups != 1 or conv.kernel_size[0] != conv.kernel_size[1]
        or isinstance(conv.padding, str) or conv.padding_mode != "zeros"
    ):  # fmt: skip
        # NIR 1.0.8 types grouped and non-square convolutions wrongly; the rest has no NIR field.
        b.problem(_join(path, "conv"), "only square, ungrouped, undilated, zero-padded convs are exported")
    why = b.neuron_problem(m.lif)
    if why:
        b.problem(_join(path, "lif"), why)
    if m.pool_mode == "analog":
        b.problem(_join(path, "pool"), "max-pool over analog BN outputs has no NIR form; use pool='spike'")
    elif m.pool is not None and (m.pool.dilation not in (1, (1, 1)) or m.pool.ceil_mode):
        b.problem(_join(path, "pool"), "only max-pools without dilation or ceil_mode map to SumPool2d")
    weight, bias = folded_conv_params(conv, m.bn)
    scale = getattr(m, "weight_scale", None)  # a quantized model: weights s·Q, bias s·B, s = 2^k
    if scale is not None:
        scale = scale.detach().float().numpy()
        weight = weight / scale.reshape(-1, *([1] * (weight.ndim - 1)))  # exact: Q and B, integers
        bias = bias / scale
        if not (np.array_equal(weight, np.round(weight)) and np.array_equal(bias, np.round(bias))):
            b.problem(_join(path, "conv"), "weight_scale set but the weights are not integer multiples of it")
    if weight.ndim == 3:  # Conv1d 1×1 on [C, N] = Conv2d 1×1 on [C, H, W]
        weight = weight[..., None]
    stride = conv.stride if isinstance(conv, nn.Conv2d) else 1
    padding = conv.padding if isinstance(conv, nn.Conv2d) else 0
    if len(b.problems) > problems:  # keep shapes flowing so later modules are checked too
        hw = _out_hw(x.shape[1:], weight.shape[2:], pair(stride), pair(padding))
        if m.pool is not None:
            hw = _out_hw(hw, pair(m.pool.kernel_size), pair(m.pool.stride), pair(m.pool.padding))
        return Flow(x.sources, (weight.shape[0], *hw))
    y = b.conv(
        _join(path, "conv"),
        weight,
        bias,
        x,
        stride=stride,
        padding=padding,
        module=_join(path, "conv"),
    )
    y = b.neuron(m.lif, _join(path, "lif"), y, scale=scale)
    if m.pool_mode == "spike":
        pool = m.pool
        s = b.sum_pool(_join(path, "pool_sum"), y, pool.kernel_size, pool.stride, pool.padding)
        y = b.threshold(_join(path, "pool"), POOL_THRESHOLD, s, module=_join(path, "pool"))
    return y


def _stem(b: GraphBuilder, m: StemEmbed, path: str, x: Flow) -> Flow:
    feat = x
    for i, layer in enumerate(m.layers):
        x = b.convert(layer, _join(path, f"layers.{i}"), x)
        if i == m.shortcut_from:
            feat = x
    return x + b.convert(m.shortcut, _join(path, "shortcut"), feat)


def _downsample(b: GraphBuilder, m: DownsampleEmbed, path: str, x: Flow) -> Flow:
    y = b.convert(m.conv2, _join(path, "conv2"), b.convert(m.conv1, _join(path, "conv1"), x))
    return y + b.convert(m.shortcut, _join(path, "shortcut"), x)


def _block(b: GraphBuilder, m: QKFormerBlock, path: str, x: Flow) -> Flow:
    x = x + b.convert(m.attn, _join(path, "attn"), x)
    return x + b.convert(m.mlp, _join(path, "mlp"), x)


def _mlp(b: GraphBuilder, m: SpikingMLP, path: str, x: Flow) -> Flow:
    return b.convert(m.fc2, _join(path, "fc2"), b.convert(m.fc1, _join(path, "fc1"), x))


def _qk_attention(b: GraphBuilder, m: QKAttention, path: str, x: Flow) -> Flow:
    C, H, W = x.shape
    q = b.convert(m.q, _join(path, "q"), x)
    k = b.convert(m.k, _join(path, "k"), x)
    why = b.neuron_problem(m.attn_lif)
    if why:
        b.problem(_join(path, "attn_lif"), why)
        return b.convert(m.proj, _join(path, "proj"), k)
    if m.mode == "token":  # per head, sum Q over the head's channels: a 1×1 conv of ones
        heads, d = m.heads, C // m.heads
        gather = np.kron(np.eye(heads), np.ones((1, d)))[:, :, None, None]  # [h, C, 1, 1]
        s = b.conv(_join(path, "q_sum"), gather, np.zeros(heads), q, module=_join(path, "q_sum"))
        a = b.neuron(m.attn_lif, _join(path, "attn_lif"), s)
        spread = b.conv(_join(path, "mask_broadcast"), gather.transpose(1, 0, 2, 3), np.zeros(C), a)
    else:  # channel: sum Q over all tokens, then copy each channel's mask to every token
        s = b.sum_pool(_join(path, "q_sum"), q, (H, W), (H, W), 0, module=_join(path, "q_sum"))
        a = b.neuron(m.attn_lif, _join(path, "attn_lif"), s)
        spread = _broadcast_mask(b, _join(path, "mask_broadcast"), a, (H, W))
    masked = b.threshold(_join(path, "mask"), MASK_THRESHOLD, spread + k, module=_join(path, "mask"))
    return b.convert(m.proj, _join(path, "proj"), masked)


def broadcast_geometry(hw: tuple[int, int]) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """``(K, stride, padding)`` of a K×K conv of ones that copies a 1×1 input to every cell of an
    H×W output, each output reading the input exactly once.

    The kernel is square because NIR 1.0.8 infers a Conv2d's output size from ``weight.shape[2]``
    in both dimensions. Per dimension of size n: output j reads padded index ``j·s + k``; the input
    sits at index ``p``, so ``0 ≤ p − j·s ≤ K − 1`` for all j and ``⌊(1 + 2p − K)/s⌋ + 1 = n``. A
    square grid gives K = n, s = 1, p = n − 1; other grids take the smallest K that works.
    """

    def fits(n: int, k: int) -> tuple[int, int] | None:
        for s in range(1, k + 1):
            for p in range(s * (n - 1), k):
                if (1 + 2 * p - k) // s + 1 == n:
                    return s, p
        return None

    k = max(hw)
    while True:
        found = [fits(n, k) for n in hw]
        if all(found):
            return k, (found[0][0], found[1][0]), (found[0][1], found[1][1])
        k += 1


def _broadcast_mask(b: GraphBuilder, name: str, mask: Flow, hw: tuple[int, int]) -> Flow:
    """A per-channel mask ``[C, 1, 1]`` copied to every token of an H×W grid (see
    :func:`broadcast_geometry`). Written dense, zeros off the channel diagonal: NIR 1.0.8 types a
    grouped Conv2d's input as ``weight.shape[1]`` channels, so a depthwise conv fails its type check."""
    C = mask.shape[0]
    k, stride, padding = broadcast_geometry(hw)
    ones = np.eye(C)[:, :, None, None] * np.ones((1, 1, k, k))
    return b.conv(name, ones, np.zeros(C), mask, stride=stride, padding=padding)


def _cross(b: GraphBuilder, m: CrossModalQKAttention, path: str, a: Flow, v: Flow) -> tuple[Flow, Flow]:
    """Cross-modal QKCA: each modality's Q (summed over its tokens) gates the other's K channels."""
    for lif in ("attn_lif_audio", "attn_lif_video"):
        why = b.neuron_problem(getattr(m, lif))
        if why:
            b.problem(_join(path, lif), why)
            return a, v
    streams = {"audio": a, "video": v}
    masks = {}
    for src, dst in (("audio", "video"), ("video", "audio")):
        q = b.convert(getattr(m, f"q_{src}"), _join(path, f"q_{src}"), streams[src])
        _, H, W = q.shape
        s = b.sum_pool(_join(path, f"q_sum_{src}"), q, (H, W), (H, W), 0)  # q_sum module runs twice: no hook
        masks[dst] = b.neuron(getattr(m, f"attn_lif_{src}"), _join(path, f"attn_lif_{src}"), s)
    out = {}
    for mod, x in streams.items():
        k = b.convert(getattr(m, f"k_{mod}"), _join(path, f"k_{mod}"), x)
        spread = _broadcast_mask(b, _join(path, f"mask_{mod}_broadcast"), masks[mod], x.shape[1:])
        name = _join(path, f"mask_{mod}")
        masked = b.threshold(name, MASK_THRESHOLD, spread + k, module=name)
        out[mod] = x + b.convert(getattr(m, f"proj_{mod}"), _join(path, f"proj_{mod}"), masked)
    return out["audio"], out["video"]


def _ssa(b: GraphBuilder, m: SpikingSelfAttention, path: str, x: Flow) -> Flow:
    b.problem(
        path,
        "SSA computes Q·(Kᵀ·V), a product of three signals; NIR has no product node "
        "(use attention 'qkta' or 'qkca')",
    )
    return x


def _stage(b: GraphBuilder, m: Stage, path: str, x: Flow) -> Flow:
    x = b.convert(m.embed, _join(path, "embed"), x)
    for i, block in enumerate(m.blocks):
        x = b.convert(block, _join(path, f"blocks.{i}"), x)
    return x


def _encoder(b: GraphBuilder, m: QKFormer, path: str, x: Flow) -> Flow:
    for i, stage in enumerate(m.stages):
        x = b.convert(stage, _join(path, f"stages.{i}"), x)
    return x


# Blocks between the two streams of an AV model (a fusion's ``cross``): (builder, module, path, audio,
# video) -> (audio, video). A fusion's own NIR form is its entry's ``readout`` (models/fusion.py).
PAIR_CONVERTERS: dict[type, Callable[[GraphBuilder, nn.Module, str, Flow, Flow], tuple[Flow, Flow]]] = {
    CrossModalQKAttention: _cross,
}

CONVERTERS: dict[type, Callable[[GraphBuilder, nn.Module, str, Flow], Flow]] = {
    ConvBNSpike: _conv_bn_spike,
    StemEmbed: _stem,
    DownsampleEmbed: _downsample,
    QKFormerBlock: _block,
    SpikingMLP: _mlp,
    QKAttention: _qk_attention,
    SpikingSelfAttention: _ssa,
    Stage: _stage,
    QKFormer: _encoder,
}


# -- inputs and read-out ------------------------------------------------------------------------------
def _input(b: GraphBuilder, key: str, encoder: QKFormer) -> Flow:
    shape = (encoder.config.in_channels, *encoder.config.input_size)
    node = nir.Input(input_type={"input": np.array(shape)}, metadata={"batch_key": key})
    return b.add(f"input.{key}", node, None, shape)  # node name input_<key>


def _readout(
    b: GraphBuilder,
    parts: list[tuple[str, Flow, torch.Tensor]],
    bias: torch.Tensor | None,
    name: str,
    scale: float | None = None,
) -> Flow:
    """Per-step logits ``W · [mean_tokens(s_1) ‖ mean_tokens(s_2)] + b`` for ``parts`` of
    ``(prefix, stream s_i, its weight columns W_i)``: each stream's sum over all tokens
    (``<prefix>.tokens``, ``[C_i, 1, 1]``); with two streams a 1×1 ``Conv2d`` of 0/1 weights
    (``<prefix>.place``) puts each into its own block of channels of one ``[ΣC, 1, 1]`` map (the
    concatenation, summed from two edges); then a 1×1 ``Conv2d`` applies ``[W_1/N_1 ‖ W_2/N_2]`` and
    ``b``. No Flatten (stock readers flatten the batch with it) and no Scale: the output is
    ``[K, 1, 1]``. The token mean is folded into the weights, so the logits agree with PyTorch to
    float rounding, not bit for bit.

    Quantized (``scale`` σ: the read-out weights are ``σ·Q``): with ``L`` the least common multiple of
    the token counts ``N_i``, the conv holds the integers ``Q_i·L/N_i`` and ``L·B`` and outputs the
    logits divided by ``σ/L`` (``b.output_scale``)."""
    total = sum(stream.shape[0] for _, stream, _ in parts)
    tokens = [int(np.prod(stream.shape[1:])) for _, stream, _ in parts]
    common = math.lcm(*tokens) if scale is not None else 1
    sums: Flow | None = None
    blocks, offset = [], 0
    for prefix, stream, w in parts:
        C, H, W = stream.shape
        s = b.sum_pool(_join(prefix, "tokens"), stream, (H, W), (H, W), 0)
        if len(parts) > 1:
            s = b.sum_conv(_join(prefix, "place"), s, 1, 1, 0, out_channels=total, offset=offset)
        sums = s if sums is None else sums + s
        if scale is None:
            blocks.append(w.detach().double() / (H * W))
        else:  # σ·Q / σ is exact, and so is the integer factor L/N
            blocks.append(w.detach().double() / scale * (common // (H * W)))
        offset += C
    weight = torch.cat(blocks, dim=1).float().numpy()[:, :, None, None]
    b_np = bias.detach().float().numpy() if bias is not None else np.zeros(weight.shape[0], np.float32)
    if scale is not None:
        b_np = (b_np.astype(np.float64) / scale * common).astype(np.float32)
        b.output_scale = scale / common
    return b.conv(name, weight, b_np, sums)


def _convert_pair(b: GraphBuilder, m: nn.Module, path: str, a: Flow, v: Flow) -> tuple[Flow, Flow]:
    for cls in type(m).__mro__:
        if cls in PAIR_CONVERTERS:
            return PAIR_CONVERTERS[cls](b, m, path, a, v)
    b.problem(path, f"{type(m).__name__} has no NIR converter")
    return a, v


def _head_of(b: GraphBuilder, encoder: QKFormer, path: str) -> nn.Linear | None:
    if not isinstance(encoder.head, nn.Linear):
        b.problem(_join(path, "head"), "the encoder has no classification head (num_classes=0)")
        return None
    return encoder.head


def _build(b: GraphBuilder, model: nn.Module) -> tuple[Flow, dict[str, object]]:
    """Add the whole model; returns the logits flow and model metadata."""
    if isinstance(model, AVClassifier):
        streams = {m: _input(b, m, getattr(model, m)) for m in model.modalities}
        cross = getattr(model, "cross", None)
        if cross is None:
            streams = {m: b.convert(getattr(model, m), m, x) for m, x in streams.items()}
        else:  # stage by stage; the streams meet after stage `fusion_stage`
            a, v = streams["audio"], streams["video"]
            for i, (stage_a, stage_v) in enumerate(zip(model.audio.stages, model.video.stages, strict=True)):
                a = b.convert(stage_a, f"audio.stages.{i}", a)
                v = b.convert(stage_v, f"video.stages.{i}", v)
                if i == model.fusion_stage:
                    a, v = _convert_pair(b, cross, "cross", a, v)
            streams = {"audio": a, "video": v}
        readout = model.method.readout  # the fusion's logits as one linear map of the features
        if readout is None:
            b.problem("logits", f"fusion {model.fusion!r} has no NIR form (no linear read-out)")
            return streams["audio"], {}
        wa, wv, bias = readout(model)
        parts = [("audio", streams["audio"], wa), ("video", streams["video"], wv)]
        logits = _readout(b, parts, bias, "logits", getattr(model, "readout_scale", None))
        encoders = {"audio": model.audio, "video": model.video}
        info = {"fusion": model.fusion}
    elif isinstance(model, UniModalClassifier):
        stream = b.convert(model.encoder, "encoder", _input(b, model.modality, model.encoder))
        head = _head_of(b, model.encoder, "encoder")
        if head is None:
            return stream, {}
        scale = getattr(model, "readout_scale", None)
        logits = _readout(b, [("encoder", stream, head.weight)], head.bias, "encoder.head", scale)
        encoders, info = {model.modality: model.encoder}, {}
    elif isinstance(model, QKFormer):
        stream = b.convert(model, "", _input(b, "x", model))
        head = _head_of(b, model, "")
        if head is None:
            return stream, {}
        logits = _readout(
            b, [("", stream, head.weight)], head.bias, "head", getattr(model, "readout_scale", None)
        )
        encoders, info = {"x": model}, {}
    else:
        raise UserError(
            f"cannot export {type(model).__name__}: expected a QKFormer, UniModalClassifier or AVClassifier"
        )
    steps = {e.config.time_steps for e in encoders.values()}
    spec = getattr(model, "quant_spec", None)
    if spec is not None:
        info.update(
            weight_bits=int(spec.bits),
            quant_granularity=spec.granularity,
            quantization=QUANT_CONVENTION,
            output_scale=float(b.output_scale),
        )
    elif getattr(model, "qat_spec", None) is not None:
        b.problem("<model>", "a QAT model exports through quantize_model (qkf export nir --weight-bits N)")
    info.update(
        time_steps=max(steps),
        inputs=",".join(encoders),
        model_config=json.dumps({k: e.config.to_dict() for k, e in encoders.items()}),
    )
    return logits, info


def build_graph(model: nn.Module, dt: float | None = None, target: str = DEFAULT_TARGET) -> nir.NIRGraph:
    """The NIR graph of ``model`` in the form of ``target`` (see :mod:`.targets`), BN folded on the
    fly (the model itself is not changed). ``dt`` defaults to the target's (1.0 where it has none).

    Raises :class:`NIRExportError` listing every module without an exact form in that target.
    """
    t = get_target(target)
    if dt is not None and not dt > 0:
        raise UserError(f"dt must be > 0, got {dt}")
    dt = t.resolve_dt(dt)
    silent = [
        f"{path}: {neuron_problem(m)}"
        for path, m in model.named_modules()
        if isinstance(m, MultiStepNeuron) and not m.spiking
    ]
    if silent:  # no graph can exist; walking it would build dense real-valued maps (17.8 GB, measured)
        raise NIRExportError(silent)
    b = GraphBuilder(dt, t)
    with torch.no_grad():
        logits, info = _build(b, model)
    if b.problems:
        raise NIRExportError(b.problems)
    k = logits.shape
    b.add("output", nir.Output(output_type={"output": np.array(k)}), logits, k)
    if t.dfs_chain and sum(isinstance(n, nir.Input) for n in b.nodes.values()) == 1:
        # Only for one Input: Norse's executor runs a single Input node anyway (see docs/nir.md).
        _add_dfs_chain(b)
        if b.problems:
            raise NIRExportError(b.problems)
    metadata = {
        "format": FORMAT,
        "producer": f"qkf_snn {_version}",
        "target": t.name,
        "readers": ",".join(t.readers),
        "dt": float(dt),
        "time_unit": "one model time step = dt (seconds for the snnTorch-compatible targets)",
        "neuron_update": "v <- (1 - dt/tau)*v + (dt*r/tau)*I (IF: v + dt*r*I); spike z = [v > v_threshold]; "
        "then v = v_reset; beta and gain are float32(...) of float64 arithmetic on the stored values",
        "threshold_convention": "v_threshold = nextafter(theta, -inf) in float32 for neurons firing on "
        "v >= theta (metadata comparator 'ge'), theta for 'gt'",
        "edges": "several edges into one node are summed (the integer residual stream)",
        "names": "node names are identifiers (module path with '.' -> '_'); metadata['path'] keeps the path",
        "bn_folded": 1,
        "readout": "output = per-step logits [K, 1, 1]; model output = mean over time steps (outside the "
        "graph); token mean folded into the read-out weights as W/N",
        "input_encoding": "analog input current per time step into the first conv (direct encoding)",
        **info,
    }
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=metadata, type_check=True)


def _chain_order(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """A topological order that follows edges where it can (after a node, one of its children that
    is ready), so that few consecutive pairs need an ordering connector."""
    index = {n: i for i, n in enumerate(nodes)}
    children: dict[str, list[str]] = {n: [] for n in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for src, dst in edges:
        children[src].append(dst)
        indegree[dst] += 1
    ready = sorted((n for n in nodes if indegree[n] == 0), key=index.get)
    order: list[str] = []
    while ready:
        last = order[-1] if order else None
        preferred = [c for c in children.get(last, []) if c in ready] if last else []
        n = preferred[0] if preferred else ready[0]
        ready.remove(n)
        order.append(n)
        for c in children[n]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
        ready.sort(key=index.get)
    return order


def _zero_geometry(src: int, dst: int) -> tuple[int, int, int]:
    """``(kernel, stride, padding)`` of a conv taking an n×n map to an m×m one (n = src, m = dst)."""
    for stride in range(1, src + 1):  # a 1×1 kernel when a stride fits: fewest stored zeros
        if (src - 1) // stride + 1 == dst:
            return 1, stride, 0
    pad = max(0, -(-(dst - src) // 2))
    return src + 2 * pad - dst + 1, 1, pad


def _add_dfs_chain(b: GraphBuilder) -> None:
    """Make a depth-first walk from the Input visit every node after all its parents.

    Norse's ``from_nir`` runs nodes in depth-first pre-order from the input (nirtorch's deprecated
    ``GraphExecutor``), following each node's edges in file order; a node reached through one
    branch before its other parents have run reads their *previous* step's output. Every Q/K
    attention and every shortcut is such a merge. So the nodes are put in one topological order,
    and wherever a node is not a child of its predecessor in that order, an ordering connector — a
    ``Conv2d`` of zeros from the predecessor's shape to the node's input shape, output exactly 0 —
    is added between them; the chain's edges come first in the edge list. The sum a node computes
    is unchanged (x + 0 = x)."""
    order = _chain_order(list(b.nodes), b.edges)
    edge_set = set(b.edges)
    parents: dict[str, str] = {}
    for src, dst in b.edges:
        parents.setdefault(dst, src)
    chain: list[tuple[str, str]] = []
    for i, (u, v) in enumerate(zip(order, order[1:], strict=False)):
        if (u, v) in edge_set:
            chain.append((u, v))
            continue
        (c1, h1, w1), (c2, h2, w2) = b.shapes[u], b.shapes[parents[v]]
        if h1 != w1 or h2 != w2:
            b.problem(v, "ordering connector needs square maps")
            return
        k, stride, pad = _zero_geometry(h1, h2)
        name = f"order_{i}"
        node = nir.Conv2d(
            input_shape=(h1, w1),
            weight=np.zeros((c2, c1, k, k), dtype=np.float32),
            stride=(stride, stride),
            padding=(pad, pad),
            dilation=1,
            groups=1,
            bias=np.zeros(c2, dtype=np.float32),
            metadata={"role": "ordering connector (zeros) for depth-first executors", "path": name},
        )
        b.nodes[name] = node
        b.shapes[name] = (c2, h2, w2)
        chain += [(u, name), (name, v)]
    chained = set(chain)
    b.edges = chain + [e for e in b.edges if e not in chained]


def export_problems(model: nn.Module, target: str = DEFAULT_TARGET) -> list[str]:
    """One line per module of ``model`` that has no NIR form in ``target`` (empty when it exports)."""
    try:
        build_graph(model, target=target)
    except NIRExportError as err:
        return err.problems
    return []
