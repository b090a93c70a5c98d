"""Registry: official parameter counts, every model runs, every parameter learns, samples stay
independent, and `qkf models` reports the same counts."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from qkf_snn.cli.main import app
from qkf_snn.errors import UserError
from qkf_snn.models import UniModalClassifier, count_parameters, create_model, list_models, recalibrate_bn
from qkf_snn.models.blocks import ConvBNSpike
from qkf_snn.models.zoo import seed_sizes

OFFICIAL = {
    "hst_4_384_cifar10": 6_706_234,
    "hst_4_384_cifar100": 6_740_884,
    "hst_10_384_imagenet": 16_473_688,
    "hst_10_512_imagenet": 29_079_336,
    "hst_10_768_imagenet": 64_962_760,
    "hst_2_256_cifar10dvs": 1_504_138,
}
# Small inputs: 32×32 tokens grids survive every stem (÷1, ÷4, ÷8) and two ÷2 stages.
SMALL = {"input_size": (32, 32), "time_steps": 2}


@pytest.mark.parametrize("name,count", OFFICIAL.items())
def test_official_parameter_counts(name, count):
    assert count_parameters(create_model(name)) == count


def _batch(model, batch: int = 2):
    if hasattr(model, "example_batch"):
        return model.example_batch(batch)
    return model.example_input(batch)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_on_small_inputs(name):
    model = create_model(name, **SMALL).eval()
    with torch.no_grad():
        out = model(_batch(model))
    classes = model.head.out_features if hasattr(model, "head") else model.audio_head.out_features
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name,kw",
    [
        ("hst_4_384_cifar10", {}),
        ("hst_2_256_cifar10dvs", {"input_size": (128, 128)}),
        ("qkf_audio_tiny", {}),
        ("qkf_video_tiny", {"pool": "spike"}),
        ("qkf_av_tiny", {"fusion": "concat"}),
        ("qkf_av_tiny", {"fusion": "sum"}),
        ("qkf_video_tiny", {"neuron": {"kind": "plif", "surrogate": "atan"}}),
    ],
)
def test_every_parameter_receives_a_gradient(name, kw):
    """Every parameter gets a finite gradient; it may be exactly zero only for the weights of a unit
    whose input was all zeros in this step (a silent attention neuron at initialisation: the
    gradient still reaches Q, K, V through the surrogate, so the unit wakes up during training)."""
    model = create_model(name, **{**SMALL, **kw}).train()
    silent = set()
    units = {n: m for n, m in model.named_modules() if isinstance(m, ConvBNSpike)}
    for n, unit in units.items():
        unit.register_forward_hook(lambda m, i, o, n=n: silent.add(n) if not i[0].any() else None)
    if hasattr(model, "audio_head"):
        outs = model.forward_all({k: v * 2 for k, v in model.example_batch(4).items()})
        # the per-modality heads are trained by the auxiliary losses
        logits = outs["logits"] + outs["audio"] + outs["video"]
    else:
        logits = model(model.example_input(4, sequence=True) * 2)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(4) % logits.shape[1])
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        if not p.grad.any():
            unit = n.rsplit(".", 2)[0]
            assert unit in silent and n.endswith(("conv.weight", "bn.weight")), f"zero gradient for {n}"
    assert all(n.endswith("attn.proj") for n in silent)  # only attention can be silent at init
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_model_output_per_sample_is_independent_of_the_batch():
    model = UniModalClassifier(create_model("qkf_video_tiny", input_size=(32, 32)), "video")
    batch = {"video": torch.rand(6, 4, 3, 32, 32) * 2}
    recalibrate_bn(model, [batch])
    other = {"video": batch["video"].clone()}
    other["video"][1:] = torch.rand(5, 4, 3, 32, 32) * 2
    with torch.no_grad():
        a, b = model(batch), model(other)
        stream = model.encoder.forward_stream(batch["video"])
    assert torch.equal(a[0], b[0])
    assert stream.sum() > 0  # the network is awake: the equality is not between two zeros
    assert stream.max() >= 2  # and the residual stream holds integers beyond 1
    assert torch.equal(stream, stream.round())


def test_static_input_is_repeated_over_time():
    model = create_model("hst_4_384_cifar10", time_steps=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x.unsqueeze(1).expand(2, 3, 3, 32, 32)))


def test_overrides_and_seed_flags():
    sizes = seed_sizes(192, [2, 4, 6], [2, 4, 8])
    assert sizes == {"dims": (48, 96, 192), "heads": (2, 4, 6), "depths": (2, 4, 8)}
    model = create_model("qkf_audio_tiny", **sizes, time_steps=8, num_classes=6)
    assert model.config.dims == (48, 96, 192) and model.config.time_steps == 8
    assert [len(s.blocks) for s in model.stages] == [2, 4, 8]
    assert model.head.out_features == 6
    spike_pool = create_model("qkf_video_tiny", pool="spike")
    assert all(m.pool_mode in (None, "spike") for m in spike_pool.modules() if hasattr(m, "pool_mode"))


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"dims": (16, 32)}, "depths has 3 entries but dims has 2 stages"),
        ({"heads": (3, 2, 2)}, "stage dim 16 is not divisible by 3 heads"),
        ({"attention": ("qkta", "full", "ssa")}, "unknown attention 'full'"),
        ({"stem": "resnet"}, "unknown stem 'resnet'"),
        ({"pool": "avg"}, "pool must be 'analog' or 'spike'"),
        ({"emb_dim": 3}, "unknown model option(s) ['emb_dim']"),
    ],
)
def test_bad_model_options(kw, message):
    with pytest.raises(UserError) as err:
        create_model("qkf_audio_tiny", **kw)
    assert message in str(err.value)


def test_unknown_model_name():
    with pytest.raises(UserError, match="unknown model 'qkformer'"):
        create_model("qkformer")


def test_cli_lists_models_with_counts():
    result = CliRunner().invoke(app, ["models", "hst_*", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row["parameters"] for row in json.loads(result.output)}
    assert rows == OFFICIAL
