"""Extension points, shown end to end: a toy fusion method, a toy surrogate, a toy energy model and two
toy neuron kinds are each one table entry, registered from this file alone (``monkeypatch.setitem``:
nothing else in the package is touched, and each entry is removed again afterwards), and runs use them
through training (or building), profiling, the report and NIR export + verification. Every registered
fusion and neuron kind takes the same path, so a new entry in ``models.fusion.FUSIONS`` or
``models.neurons.NEURONS`` is tested without writing a test for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qkf_snn.datasets import prepare
from qkf_snn.errors import UserError
from qkf_snn.hardware.nir import build_graph, export_problems, verify_graph
from qkf_snn.hardware.nir.checkpoint import export_checkpoint, verify_checkpoint
from qkf_snn.hardware.nir.nodes import neuron_problem
from qkf_snn.hardware.profile import (
    CountOptions,
    load_report,
    profile_checkpoint,
    profile_model,
    write_report,
)
from qkf_snn.hardware.profile.energy import CONSTANTS, ENERGY_MODELS, Constant, EnergyResult
from qkf_snn.models import UniModalClassifier, create_model
from qkf_snn.models.fusion import FUSIONS, AVClassifier, Fusion
from qkf_snn.models.neurons import (
    NEURONS,
    SURROGATES,
    MultiStepNeuron,
    NeuronConfig,
    Surrogate,
    make_neuron,
    surrogate_names,
)
from qkf_snn.models.neurons.backends import resolve_backend
from qkf_snn.training import compose, load_model
from qkf_snn.training.loop import train

from .conftest import TINY, tiny_overrides


# --- the three toy entries: everything each extension needs ------------------------------------------
# A surrogate: Heaviside forward, boxcar backward dS/dV = 1[|v| < width] / (2·width).
class _Boxcar(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, width):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).float()  # snnTorch's Heaviside

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < ctx.width).float() / (2 * ctx.width), None


def _boxcar(width: float = 0.3):
    return lambda x: _Boxcar.apply(x, width)


def _boxcar_grad(grad, v, out, *, width):  # the same operations, in place, for the fused backend
    torch.mul(grad, v.abs_().lt_(width), out=out).div_(2 * width)


TOY_SURROGATE = Surrogate(_boxcar, {"width": 0.3}, _boxcar_grad, triton_id=None)  # no Triton kernel


# A fusion: the mean of the two heads' logits; its NIR form is the read-out [W_a/2 ‖ W_v/2], (b_a+b_v)/2.
def _mean_logits(model, fa, fv, la, lv, parts):
    out = {"logits": (la + lv) / 2}
    if parts:
        out["audio_part"], out["video_part"] = la / 2, lv / 2
    return out


def _mean_readout(model):
    a, v = model.audio_head, model.video_head
    return a.weight / 2, v.weight / 2, (a.bias.detach() + v.bias.detach()) / 2


TOY_FUSION = Fusion(
    "the mean of the two modality heads' logits",
    _mean_logits,
    _mean_readout,
    fusion_head=False,
    audit={
        (AVClassifier, "add"): ("fusion", "mean fusion: sum of the per-modality logits"),
        (AVClassifier, "div"): ("fusion", "mean fusion: halving the sum"),
    },
)

# An energy model: every exact synaptic event at a toy constant.
TOY_CONSTANT = Constant(7.0, "pJ", "this test file", "simulated", "a made-up per-event energy")


# Two neuron kinds: each is a class with its capabilities as attributes, and one NEURONS entry.
class ToyLeaky(MultiStepNeuron):
    """A leaky integrate-and-fire with a fixed leak β = 0.75 and unscaled input; reads only ``reset``
    from the config. Its update is snnTorch's leaky one, so fused runs it and NIR exports it."""

    kind = "toy_leaky"
    config_keys = {"reset": "reset"}

    def __init__(self, *, threshold: float = 1.0, **kwargs) -> None:
        super().__init__(beta=0.75, threshold=threshold, **kwargs)


class ToyReLU(MultiStepNeuron):
    """A unit that does not spike (an ANN twin's ReLU): max(x, 0) per step, no state."""

    kind = "toy_relu"
    spiking = False

    def __init__(self, **kwargs) -> None:
        super().__init__(beta=0.0, **kwargs)

    def run(self, x: torch.Tensor, record_mem: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = torch.relu(x)
        return y, (y if record_mem else None)


TOY_NEURONS = {"toy_leaky": ToyLeaky, "toy_relu": ToyReLU}
QKF = Path(sys.executable).parent / "qkf"  # the installed console script


def _toy_energy(profile, options) -> EnergyResult:
    from qkf_snn.hardware.profile.conventions import layer_counts

    per_layer = {
        r.name: (r.exact_ac + r.exact_mac) * CONSTANTS["toy.event"].value
        for r in layer_counts(profile, options)
    }
    total = sum(per_layer.values())
    return EnergyResult(
        "toy_energy", "Toy chip", "simulated", "exact", total, per_layer, {"synaptic": total}, ["toy.event"]
    )


@pytest.fixture(scope="module")
def toys():
    """The three entries registered for this module, removed again after it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(SURROGATES, "toy_boxcar", TOY_SURROGATE)
        mp.setitem(FUSIONS, "toy_mean", TOY_FUSION)
        mp.setitem(CONSTANTS, "toy.event", TOY_CONSTANT)
        mp.setitem(ENERGY_MODELS, "toy_energy", _toy_energy)
        for kind, cls in TOY_NEURONS.items():
            mp.setitem(NEURONS, kind, cls)
        yield
    assert "toy_mean" not in FUSIONS and "toy_boxcar" not in SURROGATES and "toy_energy" not in ENERGY_MODELS
    assert not set(TOY_NEURONS) & set(NEURONS)


@pytest.fixture(scope="module")
def square_cache(crema_raw, tmp_path_factory) -> Path:
    """The tiny cache with a square spectrogram per step (16×16): the NIR forms need square grids."""
    out = tmp_path_factory.mktemp("cache") / "crema-square"
    prepare("crema", crema_raw, out, **{**TINY, "audio_width": 16})
    return out


# --- the toy surrogate, backend by backend ------------------------------------------------------------
def test_toy_surrogate_runs_bit_identically_where_claimed_and_is_declined_elsewhere(toys, monkeypatch):
    from qkf_snn.models.neurons import triton_lif  # only imported for its capability check

    assert "toy_boxcar" in surrogate_names()
    torch.manual_seed(0)
    x = torch.randn(6, 3, 40) * 1.5
    x[0, 0, :4] = 1.0  # threshold ties: H = θ exactly at the first step (fires on >=)
    runs = {}
    for backend in ("reference", "fused"):
        neuron = make_neuron("lif", surrogate="toy_boxcar", backend=backend)
        xx = x.clone().requires_grad_()
        spikes, mem = neuron.run(xx)
        (spikes * torch.linspace(-1, 1, 40)).sum().add(mem.square().sum() * 0.1).backward()
        runs[backend] = (spikes.detach(), mem.detach(), xx.grad)
    ref, fused = runs["reference"], runs["fused"]
    assert 0 < ref[0].mean() < 1 and ref[2].abs().sum() > 0
    assert torch.equal(fused[0], ref[0]) and torch.equal(fused[1], ref[1])
    torch.testing.assert_close(fused[2], ref[2], rtol=1e-5, atol=1e-6)
    # No Triton kernel: the Triton backend says no (not a KeyError) and auto takes the next backend.
    neuron = make_neuron("lif", surrogate="toy_boxcar")
    monkeypatch.setattr(triton_lif, "INTERPRET", True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not triton_lif.supports_triton(neuron, x)
    assert triton_lif.supports_triton(make_neuron("lif"), x)  # the same neuron with sigmoid: yes
    assert resolve_backend("auto", neuron, x).name == "fused"
    # Without a torch backward either, auto falls back to the reference; asking for fused is one line.
    monkeypatch.setitem(SURROGATES, "toy_boxcar", Surrogate(_boxcar, {"width": 0.3}))
    assert resolve_backend("auto", neuron, x).name == "reference"
    with pytest.raises(UserError, match="neuron backend 'fused' cannot run LIF on cpu"):
        make_neuron("lif", surrogate="toy_boxcar", backend="fused").run(x)


# --- every fusion (the toy included) through train, profile and export -----------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fusion", [*FUSIONS, "toy_mean"])
def test_every_fusion_trains_profiles_and_exports(fusion, toys, square_cache, tmp_path):
    toy = fusion == "toy_mean"
    neuron = {"surrogate": "toy_boxcar"} if toy else {}
    overrides = tiny_overrides(
        square_cache,
        tmp_path / "runs",
        **{
            "model.name": "qkf_av_tiny_deploy",
            "model.fusion": fusion,
            "model.neuron": neuron,
            "optim.epochs": 1,
        },
    )
    result = train(compose("crema", "av", overrides=overrides))
    assert result.epochs_run == 1 and result.test["n"] == 6 and {"acc_audio", "acc_video"} <= set(result.test)
    best = result.run_dir / "best.pt"
    loaded = load_model(best)
    model = loaded.model
    assert model.fusion == fusion and model.method is FUSIONS[fusion]
    surrogates = {m.surrogate.name for m in model.modules() if hasattr(m, "surrogate")}
    assert surrogates == ({"toy_boxcar"} if toy else {"sigmoid"})
    batch = model.example_batch(2)
    with torch.no_grad():
        out = model.forward_all(batch, parts=True)
    torch.testing.assert_close(out["audio_part"] + out["video_part"], out["logits"])

    # profile: the method's own arithmetic is attributed by its audit rules, nothing is unattributed
    prof, meta = profile_checkpoint(best, square_cache, "val", 4, 4, "cpu")
    assert prof.audited and not prof.unattributed, prof.unattributed
    for (cls, op), (kind, _) in FUSIONS[fusion].audit.items():
        rows = [o for o in prof.others if o.cls == cls.__name__ and o.unit == f"{op} elements"]
        assert rows and all(o.kind == kind and o.count > 0 for o in rows), (cls, op)
    paths = write_report(prof, tmp_path / "profile", CountOptions(), meta, plots=False)
    doc = load_report(paths["json"])
    toy_energy = doc["energy"]["models"]["toy_energy"]
    events = sum(c["exact_ac"] + c["exact_mac"] for c in doc["counts"])
    assert events > 0 and toy_energy["total_pj"] == pytest.approx(7.0 * events, rel=1e-12)
    assert doc["energy"]["constants"]["toy.event"]["source"] == "this test file"
    assert "`toy_energy` Toy chip" in paths["markdown"].read_text()

    # NIR: the read-out of the entry, and the graph runs spike-exact against the model
    exported = export_checkpoint(best, tmp_path / "model.nir")
    assert exported.graph.metadata["fusion"] == fusion
    report = verify_checkpoint(exported.path, best, square_cache, samples=4, check_fold=False)
    assert report.loaded and report.logits_close and report.spike_mismatches == 0
    assert report.spikes_compared > 0


def test_a_fusion_without_nir_form_is_a_listed_export_problem(toys, monkeypatch):
    from qkf_snn.hardware.nir.export import export_problems

    monkeypatch.setitem(FUSIONS, "toy_mean", Fusion("no read-out", _mean_logits, None, fusion_head=False))
    kw = dict(num_classes=3, time_steps=2, audio_input_size=(16, 16), video_input_size=(16, 16))
    model = create_model("qkf_av_tiny_deploy", fusion="toy_mean", **kw)
    assert export_problems(model) == ["logits: fusion 'toy_mean' has no NIR form (no linear read-out)"]


# --- every neuron kind (the toys included) through build, forward, profile and export -------------------
@pytest.mark.parametrize("kind", [*NEURONS, *TOY_NEURONS])
def test_every_neuron_kind_builds_runs_profiles_and_exports_or_is_refused(kind, toys):
    torch.manual_seed(0)
    enc = create_model(
        "qkf_audio_tiny_deploy",
        input_size=(32, 32),
        num_classes=4,
        time_steps=2,
        dims=(8, 16, 16),
        heads=(1, 1, 1),
        neuron={"kind": kind},
    )
    model = UniModalClassifier(enc, "audio").eval()
    neurons = {n: m for n, m in model.named_modules() if isinstance(m, MultiStepNeuron)}
    assert neurons and all(type(m) is NEURONS[kind] for m in neurons.values())
    spiking = NEURONS[kind].spiking
    # forward: what every neuron emits, recorded by hooks, for the profile to account for exactly
    batch = {"audio": torch.rand(3, 2, 1, 32, 32) * 4}
    batch["audio"][0, 0, 0, :4, :4] = 1.0  # threshold ties in the stem (fires on >=)
    emitted: dict[str, float] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=n: emitted.__setitem__(name, float(o.sum())))
        for n, m in neurons.items()
    ]
    with torch.no_grad():
        logits = model(batch)
    for h in hooks:
        h.remove()
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    assert sum(emitted.values()) > 0  # not a silent network
    # profile: every neuron layer, its output counted as the hooks saw it; synapses fed by the
    # neurons see spikes exactly when the kind says it spikes
    prof = profile_model(model, [batch])
    assert {r.name: r.neuron for r in prof.neurons} == {n: kind for n in neurons}
    for r in prof.neurons:
        assert r.spikes * 3 == pytest.approx(emitted[r.name], rel=1e-6), r.name
    assert ("spike" in {s.input_kind for s in prof.synapses}) == spiking
    # NIR (the plain target: IF needs it): exported and run spike-exact, or refused with the
    # neuron's own reason on every neuron
    why = neuron_problem(next(iter(neurons.values())))
    if why is None:
        report = verify_graph(build_graph(model, target="nir"), model, [batch], check_fold=False)
        assert report.passed and report.spike_mismatches == 0 and report.spikes_compared > 0
    else:
        problems = export_problems(model, target="nir")
        assert len(problems) == len(neurons) and all(p.endswith(why) for p in problems), problems


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in NEURONS if neuron_problem(NeuronConfig(kind=k).build())])
def test_a_kind_without_nir_form_is_one_refusal_through_the_cli(kind, square_cache, tmp_path):
    """A run trained with the kind; ``qkf export nir`` names every neuron and why, exit 2, no file."""
    overrides = tiny_overrides(
        square_cache,
        tmp_path / "runs",
        **{"model.name": "qkf_audio_tiny_deploy", "model.neuron": {"kind": kind}, "optim.epochs": 1},
    )
    best = train(compose("crema", "audio", overrides=overrides)).run_dir / "best.pt"
    out = tmp_path / "model.nir"
    command = [QKF, "export", "nir", str(best), "-o", str(out), "--target", "nir"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    why = neuron_problem(NeuronConfig(kind=kind).build())
    lines = done.stderr.strip().splitlines()
    assert lines[0].endswith(f"cannot export to NIR: {len(lines) - 1} module(s) have no NIR form")
    assert len(lines) > 1 and all(line.strip().endswith(why) for line in lines[1:])
    assert not out.exists()
