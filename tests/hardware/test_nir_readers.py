"""Stock NIR readers as judges: files written by `qkf export nir` load in unpatched snnTorch and Norse
and give the trained model's spikes at every node and step; each reader's own discretisation of our
neurons reproduces the trained β and input gain bit for bit; the readers' bugs we cannot route
around fail exactly as documented in docs/nir.md."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from qkf_snn.cli.main import app
from qkf_snn.hardware.nir import TARGETS, build_graph, metadata
from qkf_snn.hardware.nir.nodes import discrete_params, lif_node, threshold_as_lif
from qkf_snn.hardware.nir.targets import SNNTORCH_DT32
from qkf_snn.models import create_model
from qkf_snn.models.neurons import LIF, PLIF

QKF = str(Path(sys.executable).with_name("qkf"))
STOCK = ("snntorch", "norse")


def _qkf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QKF, *args], capture_output=True, text=True, timeout=600)


def _benchmark():
    """benchmarks/nir_readers.py, whose runs (the protocol of docs/nir.md's table) these tests check."""
    path = Path(__file__).parents[2] / "benchmarks" / "nir_readers.py"
    spec = importlib.util.spec_from_file_location("nir_readers_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A synthetic CREMA-D cache (32×32, T = 4) and one epoch of each deployable tiny model."""
    root = tmp_path_factory.mktemp("nir_readers")
    return root, _benchmark().deploy_runs(root)


def _export(root: Path, ckpt: Path, name: str) -> Path:
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint  # what `qkf export nir` calls

    return export_checkpoint(ckpt, root / f"{name}.nir").path  # the default target: portable


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["audio", "video"])
def test_unimodal_files_run_spike_exact_in_stock_snntorch_and_norse(runs, modality):
    root, ckpts = runs
    graph_file = _export(root, ckpts[modality], modality)
    graph = nir.read(graph_file)
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Output", "Conv2d", "LIF"}
    ckpt, cache = str(ckpts[modality]), str(root / "cache")
    args = ["verify", "nir", str(graph_file), "--checkpoint", ckpt, "--data", cache, "--samples", "4",
            "--no-fold-check", "--reader", "all", "--json"]  # fmt: skip
    done = _qkf(*args)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    reports = {r["reader"]: r for r in doc["readers"]}
    assert doc["passed"] and sorted(reports) == ["norse", "qkf", "snntorch"]
    compared = {name: sum(n["compared"] for n in r["nodes"] if n["spiking"]) for name, r in reports.items()}
    for r in reports.values():
        assert r["loaded"] and r["passed"] and r["samples"] == 4 and r["graph_nodes"] == len(graph.nodes)
        assert r["first_divergence"] is None and all(n["mismatches"] == 0 for n in r["nodes"])
        assert r["spike_mismatches"] == 0 and r["spikes_compared"] == compared["qkf"]
        assert r["logits_close"] and r["logits_max_abs_diff"] < 1e-5
        # every spiking node compared at every step and sample, and the network is not silent
        spiking = [n for n in r["nodes"] if n["spiking"]]
        assert len(spiking) == sum(isinstance(n, nir.LIF) and "torch_module" in n.metadata
                                   for n in graph.nodes.values())  # fmt: skip
        assert sum(n["spikes"] for n in spiking) > 0
    assert len(set(compared.values())) == 1 and compared["qkf"] > 100_000


@pytest.mark.slow
def test_av_file_passes_our_bridge_and_fails_in_stock_readers_exactly_as_documented(runs):
    root, ckpts = runs
    graph_file = _export(root, ckpts["av"], "av")
    args = ["verify", "nir", str(graph_file), "--checkpoint", str(ckpts["av"]), "--data", str(root / "cache"),
            "--samples", "2", "--no-fold-check", "--reader", "all", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1  # a reader that cannot run the file is a failed check
    reports = {r["reader"]: r for r in json.loads(result.output)["readers"]}
    assert reports["qkf"]["passed"] and reports["qkf"]["spike_mismatches"] == 0
    # nirtorch 2.6's nir_to_torch (snnTorch's importer) names fx nodes per Input node: two collide
    assert reports["snntorch"]["load_error"] == "loads: RuntimeError: Node redefined name is_none!"
    # Norse's executor feeds its single tensor to one Input node only: the run breaks
    assert not reports["norse"]["passed"] and reports["norse"]["load_error"].startswith("runs: ")
    norse = _norse_module(nir.read(graph_file))
    started = [n.name for n in norse.execution_order if n.name.startswith("input_")]
    assert len(started) == 1  # one of input_audio / input_video is never fed


def _norse_module(graph: nir.NIRGraph):
    import norse.torch

    return norse.torch.from_nir(graph, dt=metadata(graph)["dt"])


# -- each reader's discretisation of our neurons, bit for bit ------------------------------------------
def _snntorch_leaky(node: nir.NIRNode):
    from snntorch.import_nir import _nir_to_snntorch_module

    return _nir_to_snntorch_module(node, init_hidden=True)


def _norse_cell(node: nir.NIRNode, dt: float):
    from norse.torch.utils.import_nir import _import_norse_module

    return _import_norse_module(node, dt=dt)


NEURONS = {
    "official lif tau 2": LIF(tau=2.0),  # β = 0.5, gain 0.5
    "attention theta 0.5": LIF(tau=2.0, threshold=0.5),
    "lif tau 4": LIF(tau=4.0),  # β = 0.75, gain 0.25
    "snntorch-style gain 1": LIF(beta=0.9, decay_input=False),
    "plif": PLIF(init_tau=2.0),
}


# (neuron, target) pairs with no exact form: snnTorch scales the threshold, not the input (exact only
# for power-of-two gains); Norse's gain is dt/τ = 1 − β (r ignored).
REFUSED = {
    ("snntorch-style gain 1", "portable"),
    ("snntorch-style gain 1", "norse"),
    ("plif", "portable"),
    ("plif", "snntorch"),
}


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("target", ["portable", "snntorch", "norse"])
def test_stock_readers_compute_the_trained_beta_and_gain_bit_for_bit(name, target):
    neuron = NEURONS[name]
    if name == "plif":
        with torch.no_grad():
            neuron.beta.fill_(0.6)  # gain 1 − β = 0.4: not a power of two
    t = TARGETS[target]
    dt = t.resolve_dt(None)
    p = discrete_params(neuron)
    beta, gain, theta = np.float32(p.beta), np.float32(p.gain), np.float32(p.threshold)
    readers = dict(t.neuron_readers)
    if (name, target) in REFUSED:
        with pytest.raises(ValueError, match="no tau and r reproduce"):
            lif_node(p, (3,), dt, {}, t.neuron_readers)
        return
    node = lif_node(p, (3,), dt, {}, t.neuron_readers)
    assert node.tau.dtype == np.float32 and node.r.dtype == np.float32
    if "snntorch" in readers:
        leaky = _snntorch_leaky(node)
        assert torch.equal(leaky.beta, torch.full((3,), float(beta)))  # β bit for bit
        # snnTorch feeds the input unscaled and divides θ' by the gain instead: exact for 2^k gains
        assert float(leaky.threshold) == (theta if gain == 1 else theta / gain)
    if "norse" in readers:
        cell = _norse_cell(node, dt)
        c = dt * cell.p.tau_mem_inv  # Norse's v + c·(I − v): decay 1 − c, gain c
        assert torch.equal(c, torch.full((3,), float(gain))) and (1 - c == float(beta)).all()
        assert torch.equal(cell.p.v_th, torch.full((3,), float(theta)))


@pytest.mark.parametrize("form", ["spikingjelly", "snntorch"])
def test_snntorch_and_norse_run_our_lif_with_the_trained_spikes_on_random_and_tied_inputs(form):
    """Step the stock modules built from one exported LIF (β = 0.5, gain 0.5) on random inputs and on
    integer inputs that hit θ = 0.5 exactly. Spikes: identical in both readers for both update forms.
    Membranes: snnTorch's ``β·M + X`` (θ/gain, so M = 2U) is the snnTorch form's exactly and Norse's
    ``v + 0.5·(I − v)`` the SpikingJelly form's ``V + (X − V)/2`` exactly; across forms they round
    differently (about 30 % of membranes), which is why membranes are asserted per form."""
    torch.manual_seed(0)
    neuron = LIF(tau=2.0, threshold=0.5, form=form)  # fires on U >= 0.5
    node = lif_node(discrete_params(neuron), (4096,), SNNTORCH_DT32, {}, TARGETS["portable"].neuron_readers)
    x = torch.randn(8, 1, 4096)
    x[:, :, :1024] = torch.randint(0, 3, (8, 1, 1024)).float()  # integer inputs: exact ties at θ = 0.5
    ref, mem = neuron.run(x, record_mem=True)
    leaky, cell = _snntorch_leaky(node), _norse_cell(node, SNNTORCH_DT32)
    state, got_s, got_n, mem_s, mem_n = None, [], [], [], []
    for t in range(8):
        got_s.append(leaky(x[t]))
        mem_s.append(leaky.mem.clone())
        z, state = cell(x[t], state)
        got_n.append(z)
        mem_n.append(state.v.clone())
    assert torch.equal(torch.stack(got_s), ref) and torch.equal(torch.stack(got_n), ref)
    assert ref[:, :, :1024].sum() > 0 and 0 < ref.mean() < 1
    quiet = ref == 0  # where nothing fired, the stored membrane is the pre-reset one
    same_s = torch.equal(torch.stack(mem_s)[quiet], 2 * mem[quiet])
    same_n = torch.equal(torch.stack(mem_n)[quiet], mem[quiet])
    assert (same_s, same_n) == ((True, False) if form == "snntorch" else (False, True))


def test_threshold_as_memoryless_lif_fires_where_threshold_would():
    """NIR Threshold(θ) (stateless, x > θ) for readers without it: an LIF with τ = dt, reset 0."""
    torch.manual_seed(1)
    node = threshold_as_lif(1.5, (256,), SNNTORCH_DT32, TARGETS["portable"].neuron_readers)
    leaky, cell = _snntorch_leaky(node), _norse_cell(node, SNNTORCH_DT32)
    assert float(leaky.beta.max()) == 0.0 and float(leaky.threshold) == 1.5
    assert torch.equal(SNNTORCH_DT32 * cell.p.tau_mem_inv, torch.ones(256))
    # what our Threshold nodes see: sums of spikes (mask + K ∈ {0, 1, 2}; pool counts), ties at 1, 2
    x = torch.randint(0, 3, (10, 4, 256)).float()
    state, got_s, got_n = None, [], []
    for t in range(10):
        got_s.append(leaky(x[t]))
        z, state = cell(x[t], state)
        got_n.append(z)
    want = (x > 1.5).float()
    assert torch.equal(torch.stack(got_s), want) and torch.equal(torch.stack(got_n), want)
    # snnTorch's 0·v + x = x holds for any float input too
    y = torch.rand(6, 4, 256) * 3
    y[0, 0, :8] = 1.5
    leaky.mem = torch.zeros(0)
    assert torch.equal(torch.stack([leaky(y[t]) for t in range(6)]), (y > 1.5).float())


def test_targets_refuse_what_their_readers_cannot_run_exactly():
    plif = create_model("qkf_audio_tiny_deploy", input_size=(32, 32), num_classes=4, neuron={"kind": "plif"})
    with torch.no_grad():
        for m in plif.modules():
            if isinstance(m, PLIF):
                m.beta.fill_(0.6)
    from qkf_snn.hardware.nir import NIRExportError

    with pytest.raises(NIRExportError) as err:
        build_graph(plif, target="portable")
    assert "snnTorch divides the threshold by the input gain" in str(err.value)
    build_graph(plif, target="norse")  # Norse's gain is dt/τ = 1 − β: PLIF's own
    gain_one = create_model("qkf_video_tiny_deploy", input_size=(32, 32), num_classes=4,
                            neuron={"decay_input": False, "tau": 10.0})  # fmt: skip
    with pytest.raises(NIRExportError, match="norse: no float32 tau/r"):
        build_graph(gain_one, target="norse")
    with pytest.raises(Exception, match="fixes dt = 0.0001"):
        build_graph(gain_one, target="snntorch", dt=1.0)


# -- minimal repros of the stock readers' bugs (docs/nir.md) --------------------------------------------
def _diamond() -> nir.NIRGraph:
    """input → a (×1) → c ; input → b (×2) → b2 (×1) → c ; c → output: c = 3·x."""
    one, two = np.array([[1.0]], np.float32), np.array([[2.0]], np.float32)
    zero = np.zeros(1, np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1])}),
        "a": nir.Affine(weight=one, bias=zero),
        "b": nir.Affine(weight=two, bias=zero),
        "b2": nir.Affine(weight=one, bias=zero),
        "c": nir.Affine(weight=one, bias=zero),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "a"), ("input", "b"), ("a", "c"), ("b", "b2"), ("b2", "c"), ("c", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_norse_executor_runs_a_merge_before_its_second_branch():
    """Norse's from_nir walks depth-first: c runs after a but before b2, and reads b2's previous
    step (nothing at step 0); it returns the last node it ran. Our `portable`/`norse` targets add
    zero ordering connectors so that the depth-first walk is a topological order ending at the Output."""
    module = _norse_module_of(_diamond())
    assert [n.name for n in module.execution_order] == ["input", "a", "c", "output", "b", "b2"]
    seen: list[float] = []
    module.c.register_forward_hook(lambda m, i, o: seen.append(float(o.detach())))
    state, got = None, []
    for x in (1.0, 10.0):
        y, state = module(torch.tensor([[x]]), state)
        got.append(float(y.detach()))
    assert seen == [1.0, 12.0]  # c = a + b2 of the step before; correct: 3.0, 30.0
    assert got == [2.0, 20.0]  # and the result is b2's, the last node it ran, not the Output's


def _norse_module_of(graph):
    import norse.torch

    return norse.torch.from_nir(graph, dt=1.0)


def test_nirtorch_refuses_two_input_nodes():
    """snnTorch's import_from_nir (nirtorch 2.6 nir_to_torch) on any graph with two Input nodes."""
    from snntorch.import_nir import import_from_nir

    g = _diamond()
    g.nodes["input2"] = nir.Input(input_type={"input": np.array([1])})
    g.edges.append(("input2", "b2"))
    with pytest.raises(RuntimeError, match="^Node redefined name is_none!$"):
        import_from_nir(g)


@pytest.mark.slow
def test_bad_reader_target_and_dt_are_one_line_exit_2(runs, tmp_path):
    root, ckpts = runs
    ckpt = str(ckpts["audio"])
    out = str(tmp_path / "x.nir")
    cases = [
        (
            ["verify", "nir", out, "--checkpoint", ckpt, "--reader", "sinabs"],
            "--reader 'sinabs': choose one of",
        ),
        (["export", "nir", ckpt, "--out", out, "--target", "lava"], "--target 'lava': choose one of"),
        (["export", "nir", ckpt, "--out", out, "--target", "snntorch", "--dt", "1"], "fixes dt = 0.0001"),
    ]
    for args, words in cases:
        done = _qkf(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.nir").exists()
    # --target nir keeps the spec's Threshold and padded SumPool2d, with the user's dt
    done = _qkf("export", "nir", ckpt, "--out", out, "--target", "nir", "--dt", "0.001", "--json")
    assert done.returncode == 0, done.stderr
    graph = nir.read(out)
    assert metadata(graph)["dt"] == 0.001 and metadata(graph)["target"] == "nir"
    assert {"Threshold", "SumPool2d"} <= {type(n).__name__ for n in graph.nodes.values()}


def test_a_reader_that_skips_nodes_or_crashes_is_a_failed_check_not_a_crash(monkeypatch):
    """verify_graph takes readers from the READERS table; a reader's own failure is the finding."""
    from qkf_snn.hardware.nir import READERS, Reader, verify_graph
    from qkf_snn.hardware.nir.norse_exec import Trace
    from qkf_snn.models import UniModalClassifier, recalibrate_bn

    torch.manual_seed(0)
    model = UniModalClassifier(
        create_model("qkf_audio_tiny_deploy", input_size=(32, 32), num_classes=3), "audio"
    )
    batches = [model.example_batch(2)]
    recalibrate_bn(model, batches)
    graph = build_graph(model)
    qkf = READERS["qkf"]

    class Skipping:  # runs the graph but records no node output
        def __init__(self, *args):
            self.inner = qkf.load(*args)

        def run(self, inputs, steps):
            return Trace(self.inner.run(inputs, steps).outputs, {})

    def broken(*args):
        raise KeyError("no mapping for Conv2d")

    monkeypatch.setitem(READERS, "skipping", Reader("skipping", "test", Skipping))
    monkeypatch.setitem(READERS, "broken", Reader("broken", "test", broken))
    r = verify_graph(graph, model, batches, check_fold=False, reader="skipping")
    assert not r.passed and r.load_error.startswith("runs: RuntimeError: the reader never ran graph node ")
    r = verify_graph(graph, model, batches, check_fold=False, reader="broken")
    assert not r.passed and not r.loaded and r.load_error == "loads: KeyError: 'no mapping for Conv2d'"
    assert r.graph_nodes == len(graph.nodes) and r.spikes_compared == 0
    assert verify_graph(graph, model, batches, check_fold=False, reader="qkf").passed
