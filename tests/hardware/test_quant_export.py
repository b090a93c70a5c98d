"""Post-training quantization: integer weights with power-of-two scales folded into the thresholds,
exported to NIR and checked spike for spike against the quantized PyTorch model (threshold ties
included; a changed integer weight is caught); why the scale must be a power of two and must reach
the reset value; which stock readers run quantized files. The CLI end to end: tests/cli/test_quant_cli.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir import build_graph, verify_graph
from qkf_snn.models import UniModalClassifier, create_model, recalibrate_bn
from qkf_snn.models.neurons import MultiStepNeuron
from qkf_snn.models.quant import QuantSpec, pow2_scale, quantize_model, quantize_weights


# -- the arithmetic ---------------------------------------------------------------------------------------
def test_scale_is_the_smallest_power_of_two_that_fits():
    w = torch.tensor([[0.5, -0.25], [-1.27, 0.0], [0.0, 0.0], [3.0, 2.0]])
    # qmax 127: 0.5/127 -> 2^-7 (0.0078125 >= 0.003937, 2^-8 = 0.0039 < 0.003937); 1.27/127 = 0.01
    # -> 2^-6; all-zero channel -> 1; 3/127 = 0.0236 -> 2^-5
    assert pow2_scale(w, 127, True).tolist() == [2.0**-7, 2.0**-6, 1.0, 2.0**-5]
    assert pow2_scale(w, 127, False).tolist() == [2.0**-5]
    # an exact power of two stays itself: 7 · 2^-3 / 7 = 2^-3
    assert pow2_scale(torch.tensor([[7 * 0.125]]), 7, True).tolist() == [0.125]
    q, b, s = quantize_weights(w, torch.tensor([0.3, -0.01, 0.7, 1.0]), QuantSpec(8))
    assert torch.equal(q[0], torch.tensor([64.0, -32.0])) and torch.equal(q[1], torch.tensor([-81.0, 0.0]))
    assert q.abs().max() <= 127 and torch.equal(q, q.round())
    assert b.tolist() == [round(0.3 * 128), round(-0.01 * 64), 1.0, 32.0]


@pytest.mark.parametrize("bits", [1, 17, 2.5, True])
def test_bits_outside_the_range_are_refused(bits):
    with pytest.raises(UserError, match=r"^weight bits: must be an integer in 2\.\.16, got "):
        QuantSpec(bits)


def _sj_lif(x: torch.Tensor, theta: float, tau: float, v_reset: float) -> torch.Tensor:
    """SpikingJelly's LIF with a reset value: H = V + (X - (V - v_reset))/τ, fire on H ≥ θ, V = v_reset."""
    tau_t = torch.tensor(tau, dtype=torch.float32)
    v = torch.full_like(x[0], v_reset)
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - v_reset)) / tau_t
        s = (h >= theta).float()
        v = s * v_reset + (1 - s) * h
        out.append(s)
    return torch.stack(out)


def test_a_power_of_two_scale_preserves_spikes_only_when_the_reset_value_scales_too():
    """X, θ and v_reset scaled by s = 2^-k: identical spikes (ties at θ included); v_reset left
    unscaled, or s not a power of two: spikes differ."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 20000, generator=g) * 1.5
    x[:, :5000] = torch.randint(0, 5, (8, 5000), generator=g).float() * 0.5  # many H exactly at θ
    theta, tau, v_reset = 1.0, 2.0, 0.25
    ref = _sj_lif(x, theta, tau, v_reset)
    h0 = v_reset + x[0] / 2  # H at step 0 from V = v_reset: ties at θ exist
    assert int((h0 == theta).sum()) > 100
    for k in (3, 7, 10):
        s = 2.0**-k
        assert torch.equal(_sj_lif(x * s, theta * s, tau, v_reset * s), ref)
        assert not torch.equal(_sj_lif(x * s, theta * s, tau, v_reset), ref)  # reset not scaled
    # our neurons reset to 0, which every scale leaves alone: the zero reset needs nothing
    zero = _sj_lif(x, theta, tau, 0.0)
    assert torch.equal(_sj_lif(x * 2.0**-6, theta * 2.0**-6, tau, 0.0), zero)
    # a scale that is not a power of two rounds the scaled membranes differently (here at the ties)
    assert int((_sj_lif(x / 3, theta / 3, tau, 0.0) != zero).sum()) > 100


# -- the graph against the quantized model ------------------------------------------------------------
@pytest.fixture(scope="module")
def av():
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny_deploy", input_size=(32, 32), num_classes=5)
    batches = [model.example_batch(2)]
    recalibrate_bn(model, batches)
    return model, [_with_ties(batches[0])]


def _with_ties(batch: dict) -> dict:
    """The first clip's inputs become small integers, which put many membranes exactly on θ (ties);
    the others stay random floats."""
    out = {k: v.clone() for k, v in batch.items()}
    for v in out.values():
        v[0] = torch.randint(0, 3, v[0].shape).float()
    return out


def _ties(model, batches) -> int:
    """Membranes exactly at the nominal threshold, over the conv-fed LIFs of ``model``."""
    count = 0

    def hook(m, args, out):
        nonlocal count
        count += int((m.run(args[0], record_mem=True)[1] == m.nominal_threshold).sum())

    hooks = [
        m.register_forward_hook(hook)
        for n, m in model.named_modules()
        if isinstance(m, MultiStepNeuron) and n.endswith(".lif")
    ]
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    return count


def test_quantized_graph_is_integer_and_spike_exact_and_a_changed_weight_is_caught(av):
    model, batches = av
    bits, per_channel = 8, True
    spec = QuantSpec(bits, per_channel)
    q = quantize_model(model, spec)
    assert _ties(q, batches) > 50  # the comparison sees membranes on the threshold
    graph = build_graph(q, target="nir")
    assert graph.metadata["weight_bits"] == bits and graph.metadata["quant_granularity"] == spec.granularity
    for name, node in graph.nodes.items():
        w = getattr(node, "weight", None)
        if w is not None:
            assert np.array_equal(w, np.round(w)) and np.abs(w).max() <= 2 ** (bits - 1) - 1, name
            assert np.array_equal(node.bias, np.round(node.bias)), name
    # the stem's threshold is θ'/s per channel: exact, and θ/s is a power of two for θ = 1
    unit = q.get_submodule("audio.stages.0.embed.layers.0")
    node = graph.nodes["audio_stages_0_embed_layers_0_lif"]
    s = unit.weight_scale.numpy()
    assert (len(np.unique(s)) > 1) == per_channel
    shape = node.v_threshold.shape
    assert np.array_equal(
        node.v_threshold, np.broadcast_to(np.float32(unit.lif.threshold) / s[:, None, None], shape)
    )
    assert np.array_equal(
        np.nextafter(node.v_threshold, np.inf), np.broadcast_to(1 / s[:, None, None], shape)
    )
    report = verify_graph(graph, model, batches, check_fold=False)  # quantizes the float model itself
    assert report.quantization == spec.describe()
    assert report.passed and report.spike_mismatches == 0 and report.spikes_compared > 5 * 10**5
    assert all(c.max_abs_diff == 0 for c in report.nodes if c.op == "Conv2d")  # analog too, rescaled
    assert report.logits_close and report.logits_max_abs_diff < 1e-5
    # the quantized model differs from the float one: the check is not comparing the float model
    with torch.no_grad():
        assert not torch.equal(q.forward_steps(batches[0]), model.forward_steps(batches[0]))

    w = graph.nodes["video_stages_0_embed_layers_0_conv"].weight
    i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    w[i] -= np.sign(w[i])  # one integer step on the largest weight
    report = verify_graph(graph, model, batches, check_fold=False)
    assert not report.passed and report.first_divergence.node == "video_stages_0_embed_layers_0_lif"


def test_stock_readers_run_per_layer_files_and_snntorch_refuses_per_channel_thresholds():
    torch.manual_seed(1)
    model = UniModalClassifier(
        create_model("qkf_audio_tiny_deploy", input_size=(32, 32), num_classes=5), "audio"
    )
    batches = [model.example_batch(2)]
    recalibrate_bn(model, batches)
    batches = [_with_ties(batches[0])]
    per_layer = build_graph(quantize_model(model, QuantSpec(8, per_channel=False)))  # portable
    for reader in ("qkf", "snntorch", "norse"):
        report = verify_graph(per_layer, model, batches, check_fold=False, reader=reader)
        assert report.passed and report.spike_mismatches == 0 and report.spikes_compared > 0, reader
    per_channel = build_graph(quantize_model(model, QuantSpec(8, per_channel=True)))
    report = verify_graph(per_channel, model, batches, check_fold=False, reader="snntorch")
    assert not report.passed and "v_threshold must be same for all neurons" in report.load_error
