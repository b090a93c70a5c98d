"""OGM-GE coefficients and gradient modulation, auxiliary losses, the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qkf_snn.models import UniModalClassifier, create_model
from qkf_snn.training.balancing import (
    UnimodalCE,
    apply_ogm_ge,
    modality_scores,
    modulate_gradients,
    modulated_parameters,
    ogm_active,
    ogm_coefficients,
    unimodal_terms,
)
from qkf_snn.training.config import BalanceConfig, compose
from qkf_snn.training.optim import WarmupCosine, make_optimizer
from qkf_snn.training.terms import objective


def balanced_loss(out, y, *, aux_weight, label_smoothing=0.0):
    """The objective of an AV training step: fused CE plus the unimodal heads' terms."""
    terms = [UnimodalCE(m, aux_weight, label_smoothing) for m in ("audio", "video")]
    loss, ce, logged = objective(out, {"label": y}, terms, label_smoothing)
    return loss, {"ce": ce.item(), **logged}


def test_dominant_modality_is_slowed_by_one_minus_tanh_alpha_rho():
    mod = ogm_coefficients(6.0, 2.0, alpha=0.8)  # audio 3x as confident: audio is modulated
    assert mod.coeff_audio == pytest.approx(1 - math.tanh(0.8 * 3.0))
    assert mod.coeff_video == 1.0 and mod.ratio_audio == pytest.approx(3.0)
    mod = ogm_coefficients(1.0, 4.0, alpha=0.5)  # video dominant
    assert mod.coeff_video == pytest.approx(1 - math.tanh(0.5 * 4.0))
    assert mod.coeff_audio == 1.0
    mod = ogm_coefficients(2.0, 2.0, alpha=0.8)  # balanced: nothing changes
    assert (mod.coeff_audio, mod.coeff_video) == (1.0, 1.0)


def test_scores_are_softmax_on_the_true_class_summed_over_the_batch():
    labels = torch.tensor([0, 2])
    out = {"audio_part": torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), "video_part": torch.zeros(2, 3)}
    s_a, s_v = modality_scores(out, labels)
    expected = F.softmax(out["audio_part"], -1)[0, 0] + F.softmax(out["audio_part"], -1)[1, 2]
    assert s_a == pytest.approx(float(expected))
    assert s_v == pytest.approx(2 / 3)


def test_modulation_scales_exactly_without_noise_and_adds_reproducible_noise_with_it():
    p = torch.nn.Parameter(torch.zeros(4, 5))
    grad = torch.randn(4, 5)
    p.grad = grad.clone()
    modulate_gradients([p], 0.25, noise=False, generator=None)
    assert torch.equal(p.grad, grad * 0.25)
    results = []
    for _ in range(2):
        p.grad = grad.clone()
        modulate_gradients([p], 0.25, noise=True, generator=torch.Generator().manual_seed(7))
        results.append(p.grad.clone())
    assert torch.equal(results[0], results[1])  # same generator seed, same noise
    noise = results[0] - grad * 0.25
    expected = torch.randn(4, 5, generator=torch.Generator().manual_seed(7)) * (grad.std() + 1e-8)
    torch.testing.assert_close(noise, expected)  # N(0, std(g)^2), std of the unmodulated gradient


def _av_batch(model, batch=4):
    torch.manual_seed(0)
    return model.example_batch(batch), torch.tensor([0, 1, 2, 0])


def test_apply_ogm_ge_touches_only_the_dominant_encoders_weights():
    model = create_model("qkf_av_tiny", num_classes=3, input_size=(16, 16), time_steps=2)
    x, y = _av_batch(model)
    out = model.forward_all(x, parts=True)
    loss, _ = balanced_loss(out, y, aux_weight=1.0)
    loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    s_a, s_v = modality_scores(out, y)
    cfg = BalanceConfig(ogm_ge=True, alpha=0.8, noise=False, target="gradient")
    mod = apply_ogm_ge(model, out, y, cfg, seed=0, step=0)
    expected = ogm_coefficients(s_a, s_v, 0.8)
    assert (mod.coeff_audio, mod.coeff_video) == (expected.coeff_audio, expected.coeff_video)
    assert min(mod.coeff_audio, mod.coeff_video) < 1.0
    modulated = {id(p) for p in modulated_parameters(model.audio) + modulated_parameters(model.video)}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        coeff = mod.coeff_audio if name.startswith("audio.") else mod.coeff_video
        if id(p) in modulated:
            torch.testing.assert_close(p.grad, before[name] * coeff, rtol=0, atol=0)
        else:  # heads, biases, BatchNorm: untouched
            assert torch.equal(p.grad, before[name]), name


def test_step_target_scales_the_dominant_encoders_learning_rate_for_one_step():
    """With AdamW a rescaled gradient is normalised away; the step target scales the encoder's lr."""
    model = create_model("qkf_av_tiny", num_classes=3, input_size=(16, 16), time_steps=2)
    cfg = compose("ave", "av", overrides={"optim.lr": 1e-3, "optim.warmup_epochs": 0})
    optimizer = make_optimizer(model, cfg)
    assert {g["modality"] for g in optimizer.param_groups} == {"audio", "video", "shared"}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine.of(cfg, steps_per_epoch=10))
    x, y = _av_batch(model)
    out = model.forward_all(x, parts=True)
    balanced_loss(out, y, aux_weight=0.0)[0].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    lrs = [g["lr"] for g in optimizer.param_groups]
    mod = apply_ogm_ge(
        model, out, y, BalanceConfig(ogm_ge=True, noise=False), seed=0, step=0, optimizer=optimizer
    )
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        coeff = {"audio": mod.coeff_audio, "video": mod.coeff_video, "shared": 1.0}[group["modality"]]
        assert group["lr"] == lr * coeff
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters() if p.grad is not None)
    optimizer.step()
    scheduler.step()  # the schedule sets every group's lr again: the modulation lasts one step
    assert len({g["lr"] for g in optimizer.param_groups}) == 1


def test_ogm_window_is_inclusive():
    cfg = BalanceConfig(ogm_ge=True, start_epoch=2, end_epoch=4)
    assert [ogm_active(cfg, e) for e in range(6)] == [False, False, True, True, True, False]
    assert not ogm_active(BalanceConfig(ogm_ge=False), 0)


def test_balanced_loss_is_fused_ce_plus_weighted_unimodal_ces():
    torch.manual_seed(0)
    out = {k: torch.randn(5, 4) for k in ("logits", "audio", "video")}
    y = torch.tensor([0, 1, 2, 3, 0])
    loss, logged = balanced_loss(out, y, aux_weight=0.5, label_smoothing=0.1)
    ce = lambda z: F.cross_entropy(z, y, label_smoothing=0.1)  # noqa: E731
    # exactly, in the order the loop has always added them
    assert torch.equal(loss, ce(out["logits"]) + 0.5 * ce(out["audio"]) + 0.5 * ce(out["video"]))
    assert logged == {"ce": ce(out["logits"]).item(), "ce_audio": ce(out["audio"]).item(),
                      "ce_video": ce(out["video"]).item()}  # fmt: skip


@pytest.mark.parametrize(
    ("fusion", "aux_weight", "weights"),
    [("concat", 0.5, [0.5, 0.5]), ("concat", 0.0, [1.0, 1.0]), ("sum", 0.0, [0.0, 0.0]), (None, 0.0, [])],
)
def test_the_built_in_terms_are_one_unimodal_ce_per_head(fusion, aux_weight, weights):
    """AV: one term per head, weight aux_weight, or 1 on the probe heads' detached features when it is 0
    (so per-modality accuracy is always reported; ``sum`` fusion has no separate heads to probe); a
    single modality has none."""
    from qkf_snn.training.build import loss_terms

    if fusion is None:
        model = UniModalClassifier(create_model("qkf_audio_tiny", num_classes=3, time_steps=2), "audio")
        cfg = compose("ave", "audio")
    else:
        model = create_model("qkf_av_tiny", num_classes=3, input_size=(16, 16), time_steps=2, fusion=fusion)
        cfg = compose("ave", "av", overrides={"balance.aux_weight": aux_weight, "model.fusion": fusion})
    terms = loss_terms(cfg, model)
    assert [t.weight for t in terms] == weights == [t.weight for t in unimodal_terms(cfg, model)]
    assert [t.name for t in terms] == ["ce_audio", "ce_video"][: len(weights)]


def test_warmup_then_cosine_to_min_lr():
    cfg = compose("crema", "audio", overrides={"optim.epochs": 10, "optim.warmup_epochs": 2,
                                               "optim.lr": 1e-3, "optim.min_lr": 1e-5})  # fmt: skip
    f = WarmupCosine.of(cfg, steps_per_epoch=5)  # 10 warm-up steps, 50 in all
    assert (f.warmup_steps, f.total_steps) == (10, 50)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(30) == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the cosine
    assert f(50) == pytest.approx(0.01)
    assert all(f(s) >= f(s + 1) for s in range(10, 50))
