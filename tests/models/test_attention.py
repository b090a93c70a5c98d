"""Q-K attention on hand-checked inputs, SSA's product order, and per-sample independence."""

from __future__ import annotations

import torch

from qkf_snn.models import recalibrate_bn
from qkf_snn.models.blocks import QKAttention, SpikingSelfAttention
from qkf_snn.models.neurons import NeuronConfig


def attention_lif_by_hand(x: torch.Tensor, theta: float = 0.5) -> torch.Tensor:
    """SpikingJelly LIF, tau 2, hard reset: H = V/2 + X/2, S = H >= theta, V = H (1 - S)."""
    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        h = 0.5 * v + 0.5 * x[t]
        s = (h >= theta).float()
        out.append(s)
        v = h * (1 - s)
    return torch.stack(out)


# Q and K spikes for T=2, B=1, C=4 (two heads of two channels), N=3 tokens.
Q = torch.tensor(
    [
        [[[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]],  # t=0: head0 counts [2,0,0], head1 [0,0,1]
        [[[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]],  # t=1: head0 counts [0,1,0], head1 [0,0,0]
    ],
    dtype=torch.float32,
)
K = torch.tensor(
    [
        [[[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]]],
        [[[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]]],
    ],
    dtype=torch.float32,
)


def test_qkta_mask_and_output_by_hand():
    attn = QKAttention(4, 2, mode="token", neuron=NeuronConfig())
    mask = attn.attention_mask(Q)
    assert mask.shape == (2, 1, 2, 1, 3)
    # head0: t0 counts [2,0,0] -> H [1,0,0] -> [1,0,0]; t1 counts [0,1,0] -> H [0,0.5,0] -> [0,1,0]
    # head1: t0 counts [0,0,1] -> H [0,0,0.5] -> [0,0,1]; t1 counts 0, V(t0) reset -> [0,0,0]
    expected_mask = (
        torch.tensor([[[1, 0, 0]], [[0, 0, 1]]], dtype=torch.float32),
        torch.tensor([[[0, 1, 0]], [[0, 0, 0]]], dtype=torch.float32),
    )
    assert torch.equal(mask[0, 0], expected_mask[0])
    assert torch.equal(mask[1, 0], expected_mask[1])
    assert torch.equal(mask, attention_lif_by_hand(Q.reshape(2, 1, 2, 2, 3).sum(3, keepdim=True)))
    out = attn.apply_mask(mask, K)
    expected = torch.tensor(
        [
            [[[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1]]],
            [[[0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(out, expected)


def test_qkca_mask_and_output_by_hand():
    attn = QKAttention(4, 2, mode="channel", neuron=NeuronConfig())
    mask = attn.attention_mask(Q)
    assert mask.shape == (2, 1, 4, 1)
    # channel counts over tokens: t0 [1,1,1,0] -> H 0.5 -> fire [1,1,1,0]; t1 [0,1,0,0]: ch1 reset,
    # H = 0.5 -> fire [0,1,0,0]
    assert mask[:, 0, :, 0].tolist() == [[1, 1, 1, 0], [0, 1, 0, 0]]
    out = attn.apply_mask(mask, K)
    assert torch.equal(out, K * mask)
    assert out[1, 0].tolist() == [[0, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]]


def _identity_projection(unit) -> None:
    """Make a Conv1d-BN-LIF unit pass spikes through: weight 4·I (BN in eval is ~identity, and the
    LIF at tau 2 sees H = 2 ≥ 1 for a spike, 0 for none), bias 0."""
    c = unit.conv.weight.shape[0]
    with torch.no_grad():
        unit.conv.weight.copy_(4 * torch.eye(c).unsqueeze(-1))
        if unit.conv.bias is not None:
            unit.conv.bias.zero_()


def test_qkta_full_forward_by_hand():
    attn = QKAttention(4, 2, mode="token", neuron=NeuronConfig()).eval()
    for unit in (attn.q, attn.k, attn.proj):
        _identity_projection(unit)
    x = Q[:1] + K[:1]  # one step; integer stream 0..2
    q_spk, k_spk = (x > 0).float(), (x > 0).float()
    out = attn(x.reshape(1, 1, 4, 3, 1)).reshape(1, 1, 4, 3)
    heads = q_spk.reshape(1, 1, 2, 2, 3).sum(3, keepdim=True)
    mask = attention_lif_by_hand(heads)
    expected = (mask * k_spk.reshape(1, 1, 2, 2, 3)).reshape(1, 1, 4, 3)
    assert torch.equal(out, expected)
    assert 0 < expected.sum() < expected.numel()


def test_ssa_products_are_linear_order_and_exact():
    torch.manual_seed(1)
    ssa = SpikingSelfAttention(8, 2, neuron=NeuronConfig())
    q, k, v = [(torch.rand(2, 3, 2, 5, 4) > 0.5).float() for _ in range(3)]
    linear = ssa.qkv(q, ssa.kv(k.transpose(-2, -1), v))
    quadratic = (q @ k.transpose(-2, -1)) @ v
    assert torch.equal(linear, quadratic)  # integer products: both orders exact


def test_sample_output_is_independent_of_the_batch():
    """The official SSA ran its last LIF over T·B and leaked state across samples (issue #14)."""
    ssa = SpikingSelfAttention(16, 2, neuron=NeuronConfig())
    with torch.no_grad():  # louder Q/K/V than at init, so the attention neuron is not silent
        for unit in (ssa.q, ssa.k, ssa.v):
            unit.bn.weight.fill_(4.0)
    x = (torch.rand(4, 6, 16, 4, 4) > 0.7).float()  # [T, B, C, H, W]
    recalibrate_bn(ssa, [x])
    y = ssa(x)
    x2 = x.clone()
    x2[:, 1:] = (torch.rand(4, 5, 16, 4, 4) > 0.3).float()
    y2 = ssa(x2)
    assert torch.equal(y[:, 0], y2[:, 0])
    assert not torch.equal(y[:, 1:], y2[:, 1:])
    assert y[:, 0].sum() > 0


def test_official_bug_would_leak():
    """Counter-check: running the final neuron over the merged T·B axis (the official bug) makes
    sample 0's spikes depend on the others, so the independence test above can fail."""
    lif = NeuronConfig().build()
    x = torch.rand(4, 3, 10) * 2
    x2 = x.clone()
    x2[:, 1:] = torch.rand(4, 2, 10) * 2
    buggy = lif(x.transpose(0, 1).reshape(12, 1, 10)).reshape(3, 4, 10)
    buggy2 = lif(x2.transpose(0, 1).reshape(12, 1, 10)).reshape(3, 4, 10)
    fixed, fixed2 = lif(x), lif(x2)
    assert torch.equal(fixed[:, 0], fixed2[:, 0])
    # In the buggy layout sample 0 comes first, so it is the later samples that inherit state.
    assert not torch.equal(buggy[1:], buggy2[1:])
