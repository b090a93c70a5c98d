"""Neuron backends: the fused (CPU) and Triton (CUDA; CPU through Triton's interpreter) backends give
the reference's spikes and membranes bit for bit and its gradients up to summation order, for every
neuron kind and form (LIF in SpikingJelly's and in snnTorch's form), reset, surrogate and threshold
they support; ``auto`` picks them; ``set_backend`` swaps them in a whole model without changing its
outputs."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from snntorch import surrogate as snn_surrogate

from qkf_snn.errors import UserError
from qkf_snn.models import create_model
from qkf_snn.models.neurons import SURROGATES, fused, make_neuron
from qkf_snn.models.neurons.backends import AUTO_ORDER, BACKENDS, resolve_backend, set_backend
from qkf_snn.models.neurons.surrogate import surrogate_grad, surrogate_names, surrogate_spec

REPO = Path(__file__).resolve().parents[2]
KINDS = ("lif", "lif_snntorch", "plif", "if")  # lif = the SpikingJelly form (LIF's default)
FORM_KINDS = {"lif_snntorch": ("lif", {"form": "snntorch"})}
RESETS = ("zero", "subtract", "none")
CANONICAL_SURROGATES = tuple(SURROGATES)
FUSED_SURROGATES = tuple(name for name, entry in SURROGATES.items() if entry.grad is not None)
TRITON_SURROGATES = tuple(name for name, entry in SURROGATES.items() if entry.triton_id is not None)


def run_backend(backend: str, x: torch.Tensor, kind: str, *, loss_seed: int = 1, **params):
    """Spikes, membranes, dL/dx and dL/dβ (PLIF) for a loss that uses spikes and membranes."""
    kind, extra = FORM_KINDS.get(kind, (kind, {}))
    neuron = make_neuron(kind, backend=backend, **extra, **params)
    x = x.detach().clone().requires_grad_()
    spikes, mem = neuron.run(x)
    gen = torch.Generator().manual_seed(loss_seed)
    w_spk = torch.randn(spikes.shape, generator=gen).to(spikes.dtype)
    w_mem = torch.randn(mem.shape, generator=gen) * 0.1
    ((spikes * w_spk).sum() + (mem * w_mem).sum()).backward()
    beta_grad = neuron.beta.grad if neuron.beta.requires_grad else None
    return spikes.detach(), mem.detach(), x.grad, beta_grad


def assert_same(ref, ours, *, grad_rtol: float = 1e-5, beta_atol: float = 1e-4) -> None:
    assert torch.equal(ours[0], ref[0]), "spikes differ"
    assert torch.equal(ours[1], ref[1]), "membranes differ"
    torch.testing.assert_close(ours[2], ref[2], rtol=grad_rtol, atol=1e-6)
    if ref[3] is not None:
        # one sum over T·N terms of both signs: only the summation order differs
        torch.testing.assert_close(ours[3], ref[3], rtol=1e-5, atol=beta_atol)
    assert 0 < ref[0].float().mean() < 1  # neither silent nor saturated: the comparison means something


# --- fused backend ---------------------------------------------------------------------------------
@pytest.mark.parametrize("surrogate", FUSED_SURROGATES)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_matches_reference(kind, reset, surrogate):
    x = torch.randn(6, 3, 5, 7) * 1.5
    params = dict(reset=reset, surrogate=surrogate, threshold=1.0)
    assert_same(run_backend("reference", x, kind, **params), run_backend("fused", x, kind, **params))


@pytest.mark.parametrize("kind", ["lif", "lif_snntorch"])
@pytest.mark.parametrize(
    "T,shape,threshold,comparator,tau,decay_input",
    [
        (1, (4, 9), 1.0, "ge", 2.0, True),
        (2, (2, 3, 3), 0.7, "gt", 3.0, True),
        (16, (2, 33), 1.0, "ge", 2.0, False),
        (5, (3, 4, 2, 2), 0.25, "ge", 1.5, True),
        (6, (3, 40), 0.5, "ge", 4 / 3, False),
    ],
)
def test_fused_matches_reference_across_shapes(kind, T, shape, threshold, comparator, tau, decay_input):
    x = torch.randn(T, *shape) * (2 if decay_input else 0.7)
    for reset in RESETS:
        params = dict(
            reset=reset, threshold=threshold, comparator=comparator, tau=tau, decay_input=decay_input
        )
        assert_same(run_backend("reference", x, kind, **params), run_backend("fused", x, kind, **params))


@pytest.mark.parametrize("comparator", ["ge", "gt"])
def test_attention_neuron_integer_inputs_bit_identical(comparator):
    """Attention neurons see integer counts; H = 0.5 exactly must fire for ``ge`` and not for ``gt``."""
    counts = torch.randint(0, 4, (4, 2, 3, 64)).float()
    params = dict(threshold=0.5, comparator=comparator)
    ref = run_backend("reference", counts, "lif", **params)
    ours = run_backend("fused", counts, "lif", **params)
    assert_same(ref, ours)
    first_step_half = counts[0] == 1  # U[0] = 0.5 · 1 = 0.5 = θ
    assert ours[0][0][first_step_half].eq(1.0 if comparator == "ge" else 0.0).all()


@pytest.mark.parametrize("kind", ["lif", "lif_snntorch"])
def test_negative_threshold_resets_from_the_first_step(kind):
    """With θ' < 0 the snnTorch form counts the zero initial membrane as a spike for the next step's
    reset; the SpikingJelly form starts from V = 0 after no reset. Both backends agree either way."""
    x = torch.randn(5, 4, 8)
    for reset in RESETS:
        params = dict(reset=reset, threshold=-0.3, tau=2.0)
        ref = run_backend("reference", x, kind, **params)
        ours = run_backend("fused", x, kind, **params)
        assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
        torch.testing.assert_close(ours[2], ref[2], rtol=1e-5, atol=1e-6)


def test_plif_beta_gradient_through_clamp_and_input_scale():
    """PLIF's β enters twice (decay b = clamp(β) and input scale 1 - b): both paths reach β.grad."""
    x = torch.randn(8, 4, 16) * 2
    for decay_input in (True, False):
        params = dict(decay_input=decay_input, init_tau=3.0)
        ref = run_backend("reference", x, "plif", **params)
        ours = run_backend("fused", x, "plif", **params)
        assert_same(ref, ours)
        assert ref[3].abs() > 1e-3
    # β outside [0, 1]: the clamp blocks its gradient in both
    grads = {}
    for backend in ("reference", "fused"):
        neuron = make_neuron("plif", backend=backend)
        with torch.no_grad():
            neuron.beta.fill_(1.25)
        neuron(x).sum().backward()
        grads[backend] = neuron.beta.grad
    # only the input-scale path 1 - clamp(β) remains, and it is clamped too
    assert grads["reference"] == grads["fused"] == 0


@pytest.mark.parametrize("chunk_elements", [1, 40, 100, 2**18])
def test_fused_chunking_is_invisible(monkeypatch, chunk_elements):
    """One step per chunk, uneven chunks (T = 7 in chunks of 2 steps of 20 values) and one chunk for
    everything give the same bits: training and inference, with and without recorded membranes."""
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", chunk_elements)
    x = torch.randn(7, 4, 5) * 2
    for reset in RESETS:
        for kind in KINDS:
            params = dict(reset=reset, threshold=0.5)
            assert_same(run_backend("reference", x, kind, **params), run_backend("fused", x, kind, **params))
        for form in ("spikingjelly", "snntorch"):
            with torch.no_grad():
                ref_spikes, ref_mem = make_neuron("lif", backend="reference", reset=reset, form=form).run(x)
                spikes, mem = make_neuron("lif", backend="fused", reset=reset, form=form).run(x)
                no_mem_spikes, none = make_neuron("lif", backend="fused", reset=reset, form=form).run(
                    x, record_mem=False
                )
            assert torch.equal(spikes, ref_spikes) and torch.equal(mem, ref_mem)
            assert torch.equal(no_mem_spikes, ref_spikes) and none is None


def test_fused_bf16_input_spikes_and_gradients_bit_identical():
    """bf16 in, bf16 spikes out, float32 arithmetic inside: the reference upcasts and casts back."""
    x = (torch.randn(6, 3, 40) * 2).to(torch.bfloat16)
    for kind in KINDS:
        for reset in RESETS:
            ref = run_backend("reference", x, kind, reset=reset, threshold=0.5)
            ours = run_backend("fused", x, kind, reset=reset, threshold=0.5)
            assert ours[0].dtype == ours[2].dtype == torch.bfloat16
            assert_same(ref, ours)
            assert torch.equal(ours[2], ref[2])  # same float32 values before the bf16 rounding


@pytest.mark.parametrize("form,ratio", [("spikingjelly", 1), ("snntorch", 2)])
def test_fused_saves_only_the_membrane(form, ratio):
    """Saved for backward: the float32 pre-reset membrane (4 bytes per neuron-step) and a 0-dim
    float32 (β, or τ in the SpikingJelly form)."""

    def saved_bytes(backend: str) -> int:
        seen: dict[int, int] = {}
        alive: list[torch.Tensor] = []  # a freed saved tensor's address may be reused by a later one

        def pack(t: torch.Tensor) -> torch.Tensor:
            alive.append(t)
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x = torch.randn(8, 4, 256).requires_grad_()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            make_neuron("lif", backend=backend, form=form)(x)
        return sum(seen.values())

    assert saved_bytes("fused") == 8 * 4 * 256 * 4 + 4
    assert saved_bytes("reference") > ratio * saved_bytes("fused")


def test_unused_spikes_or_membranes_give_zero_gradient_paths():
    """A loss on membranes only (no spike gradient) or spikes only must still match the reference."""
    x = torch.randn(6, 3, 11) * 2
    for use, form in itertools.product(("mem", "spikes"), ("spikingjelly", "snntorch")):
        grads = []
        for backend in ("reference", "fused"):
            xx = x.clone().requires_grad_()
            spikes, mem = make_neuron("lif", backend=backend, form=form).run(xx)
            (mem.pow(2).sum() if use == "mem" else spikes.sum()).backward()
            grads.append(xx.grad)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("surrogate", CANONICAL_SURROGATES)
def test_every_surrogate_through_every_backend_that_claims_it(surrogate):
    """Each table entry, through each backend whose ``supports`` accepts it here (fused on CPU; Triton
    too under the interpreter or on CUDA): the reference's spikes and membranes bit for bit, on random
    floats with exact threshold ties; a backend that declines is never asked."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 41) * 1.5
    x[0, 0, :5] = 1.0  # H = θ at the first step: fires only because the comparator is >=
    ref = run_backend("reference", x, "lif", surrogate=surrogate)
    claimed = []
    for name, backend in BACKENDS.items():
        if name != "reference" and backend.supports(make_neuron("lif", surrogate=surrogate), x):
            assert_same(ref, run_backend(name, x, "lif", surrogate=surrogate))
            claimed.append(name)
    assert (SURROGATES[surrogate].grad is not None) == ("fused" in claimed)


def test_surrogate_closed_forms_equal_snntorch_backward():
    """Per element, the closed forms are snnTorch's own expressions: bit-identical gradients."""
    v = torch.linspace(-3, 3, 601)
    grad = torch.randn(601)
    for name in FUSED_SURROGATES:
        spec = surrogate_spec(name)
        vv = v.clone().requires_grad_()
        spec.build()(vv).backward(grad)
        assert torch.equal(surrogate_grad(spec, grad, v), vv.grad), name
    assert set(CANONICAL_SURROGATES) == {surrogate_spec(n).name for n in surrogate_names()}


# --- automatic selection and model-wide switching -------------------------------------------------
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float16, torch.float64))
@pytest.mark.parametrize("slope", (4.0, 25.0))
def test_sigmoid_surrogate_finite_where_snntorch_overflows(dtype, slope):
    """snnTorch 1.0.0's sigmoid backward is NaN once exp(-slope·v) overflows (its issue #427). Ours
    (the reference backend's function, and in float32 the fused closed form) is the same expression
    bit for bit, sign of zero included, wherever snnTorch's is finite, ±0 where it is NaN, and within
    rounding of the exact value (snnTorch's fix, PR #433, computes σ(kv)(1 - σ(kv)) instead)."""
    gen = torch.Generator().manual_seed(int(slope))
    v = torch.cat([torch.linspace(-100, 100, 2001), torch.randn(2000, generator=gen) * 20]).to(dtype)
    v[:7] = torch.tensor([0.0, -0.0, -30.0, -22.9, 1e-3, -1e-3, -3e4]).to(dtype)
    grad = torch.randn(v.shape, generator=gen)  # float32: snnTorch's spikes are float32 in every dtype
    spec = surrogate_spec("sigmoid", slope=slope)
    grads = []
    for spike_fn in (snn_surrogate.sigmoid(slope), spec.build()):
        vv = v.clone().requires_grad_()
        spike_fn(vv).backward(grad)
        grads.append(vv.grad)
    stock, ours = grads
    bad = ~torch.isfinite(stock)
    assert bad.any()  # the upstream bug is inside this range: the test can fail
    assert torch.isfinite(ours).all()
    assert torch.equal(ours[~bad], stock[~bad])
    assert torch.equal(torch.signbit(ours[~bad]), torch.signbit(stock[~bad]))
    assert torch.equal(ours[bad], torch.zeros_like(ours[bad]))
    if dtype == torch.float32:  # the fused backend's closed form (it runs in float32)
        closed = surrogate_grad(spec, grad, v)
        assert torch.equal(closed, ours) and torch.equal(torch.signbit(closed), torch.signbit(ours))
    # the accurate value, in float64 from exp(-|kv|) (even in v; σ(1 - σ) underflows to 0 for kv > 37).
    # exp's relative error grows with its argument (|kv|·eps); where our expression flushes to 0 the
    # true value is below slope·|g|/sqrt(max)
    kv, g64 = slope * v.double(), grad.double()
    e = torch.exp(-kv.abs())
    true = g64 * slope * e / (1 + e) ** 2
    info = torch.finfo(dtype)
    eps = max(info.eps, torch.finfo(torch.float32).eps)  # g · slope is a float32 product
    tol = eps * (kv.abs() + 8) * true.abs() + 2 * slope * g64.abs() / math.sqrt(info.max) + 4 * info.tiny
    assert ((ours.double() - true).abs() <= tol).all()
    # through every backend that runs the sigmoid surrogate: neurons driven far below threshold
    x = torch.randn(6, 4, 40, generator=gen) * 1.5
    x[:, 1] -= 60.0  # membranes ~ -60 at slope 4 (the run that hit it had -23), ~ -5 at slope 25
    if dtype == torch.float32:
        ref = run_backend("reference", x, "lif", surrogate="sigmoid", surrogate_params={"slope": slope})
        assert torch.isfinite(ref[2]).all()
        for name, backend in BACKENDS.items():
            neuron = make_neuron("lif", surrogate="sigmoid")
            if name != "reference" and backend.supports(neuron, x):
                ours = run_backend(name, x, "lif", surrogate="sigmoid", surrogate_params={"slope": slope})
                assert torch.isfinite(ours[2]).all(), name
                assert_same(ref, ours)


def test_auto_prefers_fused_on_cpu_and_keeps_reference_for_qif():
    x = torch.randn(4, 2, 3)
    assert AUTO_ORDER == ["triton", "fused", "reference"]
    for kind in KINDS:
        kind, extra = FORM_KINDS.get(kind, (kind, {}))
        assert resolve_backend("auto", make_neuron(kind, **extra), x).name == "fused"
    assert resolve_backend("auto", make_neuron("qif"), x).name == "reference"
    if os.environ.get("TRITON_INTERPRET") != "1":
        with pytest.raises(UserError, match="neuron backend 'triton' cannot run LIF on cpu"):
            make_neuron("lif", backend="triton")(x)
    with pytest.raises(UserError, match="neuron backend 'fused' cannot run QIF"):
        make_neuron("qif", backend="fused")(x)


def test_set_backend_switches_every_neuron_and_keeps_the_model_exact():
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny", num_classes=5)
    batch = model.example_batch(2)
    batch = {k: torch.rand_like(v) for k, v in batch.items()}
    labels = torch.tensor([1, 3])
    results = {}
    for backend in ("reference", "fused"):
        n = set_backend(model, backend)
        assert n == sum(1 for m in model.modules() if getattr(m, "backend", None) == backend) > 20
        model.zero_grad()
        logits = model(batch)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results[backend] = (logits.detach(), grads)
    assert torch.equal(results["fused"][0], results["reference"][0])  # train-mode forward, bit for bit
    assert results["fused"][1].keys() == results["reference"][1].keys()
    assert len(results["reference"][1]) > 50
    for name, grad in results["reference"][1].items():
        torch.testing.assert_close(results["fused"][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    with pytest.raises(UserError) as err:
        set_backend(model, "cuda-magic")
    assert "unknown neuron backend 'cuda-magic'" in str(err.value) and "\n" not in str(err.value)


def test_backends_never_import_the_neuron_module():
    """Capabilities are attributes of the neuron (``split_input_scale``, ``surrogate.entry``), so the
    backends need no import of ``lif.py`` (which imports them): no cycle inside models/neurons."""
    import ast

    folder = REPO / "qkf_snn" / "models" / "neurons"
    for name in ("backends.py", "fused.py", "triton_lif.py", "surrogate.py"):
        tree = ast.parse((folder / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "qkf_snn.models.neurons.lif" not in imported, name
        assert "qkf_snn.models.neurons" not in imported, name  # the package imports lif


def test_backend_registry_entries():
    assert {"reference", "fused", "triton"} <= set(BACKENDS)
    assert [name for name, b in BACKENDS.items() if b.raw_input] == ["fused", "triton"]


# --- Triton kernels, on CPU through the interpreter ------------------------------------------------
_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    sys.path.insert(0, os.environ["QKF_TEST_DIR"])
    from test_neuron_backends import TRITON_SURROGATES, run_backend
    torch.manual_seed(0)
    cases = []
    def check(kind, x, tol_bf16=False, **params):
        ref = run_backend("reference", x, kind, **params)
        ours = run_backend("triton", x, kind, **params)
        grad_ok = torch.allclose(ours[2].float(), ref[2].float(), rtol=2**-7 if tol_bf16 else 1e-5,
                                 atol=1e-2 if tol_bf16 else 1e-6)
        beta_ok = ref[3] is None or torch.allclose(ours[3], ref[3], rtol=1e-4, atol=1e-3)
        cases.append(dict(kind=kind, dtype=str(x.dtype), params={k: str(v) for k, v in params.items()},
                          spikes=torch.equal(ours[0], ref[0]), mem=torch.equal(ours[1], ref[1]),
                          spike_dtype=str(ours[0].dtype), grad=bool(grad_ok), beta=bool(beta_ok),
                          rate=float(ref[0].float().mean())))
    for kind in ("lif", "lif_snntorch", "plif", "if"):
        for reset in ("zero", "subtract", "none"):
            for surrogate in TRITON_SURROGATES:  # every table entry with a kernel
                check(kind, torch.randn(5, 3, 37) * 1.5, reset=reset, surrogate=surrogate)
    check("lif", torch.randint(0, 4, (4, 2, 70)).float(), threshold=0.5)        # attention neuron, >=
    check("lif", torch.randint(0, 4, (4, 2, 70)).float(), threshold=0.5, comparator="gt")
    check("lif", torch.randn(1, 5, 9), threshold=0.7, tau=3.0)                   # T = 1
    check("lif", torch.randn(16, 2, 1100) * 2, reset="subtract")                 # > 1 program
    check("lif", torch.randn(5, 4, 8), reset="subtract", threshold=-0.3)         # θ' < 0
    check("lif", torch.randn(5, 3, 37) * 1.5 - torch.tensor([0.0, 60.0, 0.0]).view(1, 3, 1),
          surrogate="sigmoid")                                                   # exp(-k·v) > FLT_MAX
    for kind in ("lif", "lif_snntorch", "plif"):                                 # bf16 in / out
        check(kind, (torch.randn(6, 3, 40) * 2).to(torch.bfloat16), tol_bf16=True, threshold=0.5)
    for tau in (1.5, 4 / 3):                                                     # SpikingJelly form
        for decay_input in (True, False):
            for reset in ("zero", "subtract"):
                check("lif", torch.randn(6, 2, 50) * (1.5 if decay_input else 0.6), tau=tau,
                      decay_input=decay_input, reset=reset, threshold=0.7)
    # against SpikingJelly 2.0 itself, the issue's example included
    from test_neurons import ISSUE_X, spikingjelly_lif
    from qkf_snn.models.neurons import make_neuron
    sj = []
    for x, tau, reset in ((torch.tensor(ISSUE_X).reshape(2, 1), 2.0, "zero"),
                          (torch.randn(8, 4, 300) * 1.5, 2.0, "zero"),
                          (torch.randn(8, 4, 300) * 1.5, 4 / 3, "subtract")):
        ref_s, _, ref_h = spikingjelly_lif(x, tau, 1.0, reset)
        s, h = make_neuron("lif", tau=tau, reset=reset, backend="triton").run(x)
        sj.append(dict(spikes=torch.equal(s, ref_s), mem=torch.equal(h, ref_h), fired=float(ref_s.sum())))
    print(json.dumps(dict(cases=cases, sj=sj, surrogates=len(TRITON_SURROGATES))))
    """
)


@pytest.mark.slow
def test_triton_kernels_bit_identical_under_interpreter():
    pytest.importorskip("triton")
    pytest.importorskip("spikingjelly")
    env = {**os.environ, "TRITON_INTERPRET": "1", "QKF_TEST_DIR": str(Path(__file__).parent)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cases = result["cases"]
    assert result["surrogates"] == len(TRITON_SURROGATES) == 6
    assert len(cases) == 4 * 3 * result["surrogates"] + 6 + 3 + 8
    assert result["sj"] and all(c["spikes"] and c["mem"] and c["fired"] > 0 for c in result["sj"])
    failed = [c for c in cases if not (c["spikes"] and c["mem"] and c["grad"] and c["beta"])]
    assert not failed, failed
    assert all(0 < c["rate"] < 1 for c in cases)
    bf16 = [c for c in cases if c["dtype"] == "torch.bfloat16"]
    assert bf16 and all(c["spike_dtype"] == "torch.bfloat16" for c in bf16)  # spikes in the input dtype


# --- Triton kernels on a real GPU ---------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("surrogate", TRITON_SURROGATES)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", KINDS)
def test_triton_matches_reference_on_cuda(kind, reset, surrogate):
    x = torch.randn(8, 4, 3, 333, device="cuda") * 1.5
    params = dict(reset=reset, surrogate=surrogate)
    ref = [t.cpu() if t is not None else None for t in run_backend("reference", x, kind, **params)]
    for backend in ("triton", "fused"):
        ours = [t.cpu() if t is not None else None for t in run_backend(backend, x, kind, **params)]
        assert_same(ref, ours)


@cuda
@pytest.mark.cuda
def test_triton_bf16_and_auto_on_cuda():
    x = (torch.randn(4, 8, 4096, device="cuda") * 2).to(torch.bfloat16)
    neuron = make_neuron("lif", threshold=0.5)
    assert resolve_backend("auto", neuron, x).name == "triton"
    ref = run_backend("reference", x, "lif", threshold=0.5)
    ours = run_backend("triton", x, "lif", threshold=0.5)
    assert ours[0].dtype == torch.bfloat16
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    # dL/dx is rounded to bf16 from float32 values that may differ in the last float32 bit
    torch.testing.assert_close(ours[2].float(), ref[2].float(), rtol=2**-7, atol=1e-3)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("tau", [2.0, 1.5, 4 / 3])
def test_every_backend_equals_spikingjelly_on_cuda(tau):
    """On the GPU: SpikingJelly's own CUDA kernels (IEEE division by float32 τ) against our three
    backends, random inputs, hard and soft reset."""
    from test_neurons import spikingjelly_lif

    x = torch.randn(8, 16, 5000, device="cuda") * 1.5
    for reset in ("zero", "subtract"):
        ref_spikes, _, ref_h = spikingjelly_lif(x, tau, 1.0, reset)
        for backend in ("reference", "fused", "triton"):
            spikes, h = make_neuron("lif", tau=tau, reset=reset, backend=backend).run(x)
            assert torch.equal(spikes, ref_spikes), backend
            assert torch.equal(h, ref_h), backend
