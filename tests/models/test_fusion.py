"""AV fusion: concat, sum and the spiking cross-modal Q-K attention (``fusion="qk"``)."""

from __future__ import annotations

import pytest
import torch

from qkf_snn.errors import UserError
from qkf_snn.models import create_model, recalibrate_bn
from qkf_snn.models.fusion import FUSIONS, CrossModalQKAttention
from qkf_snn.models.neurons import NeuronConfig

SMALL = dict(num_classes=5, time_steps=2, audio_input_size=(16, 8), video_input_size=(16, 16))


def _model(fusion: str, **kw):
    torch.manual_seed(0)
    return create_model("qkf_av_tiny", fusion=fusion, **SMALL, **kw)


def _active(model, batch):
    """Exact BN statistics so that the eval-mode model spikes (see recalibrate_bn)."""
    return recalibrate_bn(model, [batch])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_parts_add_up_to_the_fused_logits(fusion):
    model = _model(fusion)
    batch = model.example_batch(3)
    _active(model, batch)
    with torch.no_grad():
        out = model.forward_all(batch, parts=True)
        plain = model.forward_all(batch)
    assert set(out) == {"logits", "audio", "video", "audio_part", "video_part"}
    assert set(plain) == {"logits", "audio", "video"}  # the public interface is unchanged
    torch.testing.assert_close(out["audio_part"] + out["video_part"], out["logits"])
    torch.testing.assert_close(model(batch), out["logits"])


def test_qk_fusion_runs_stage_by_stage_and_attends_at_the_chosen_stage():
    model = _model("qk", fusion_stage=1)
    assert model.fusion_stage == 1 and isinstance(model.cross, CrossModalQKAttention)
    assert _model("qk").fusion_stage == 2  # default -1: after the last stage
    batch = model.example_batch(2)
    _active(model, batch)
    seen = []
    model.cross.register_forward_hook(lambda m, i, o: seen.append(tuple(t.shape for t in i)))
    with torch.no_grad():
        model(batch)
    # after stage 1 (÷8): audio 16x8 -> 2x1 tokens, video 16x16 -> 2x2 tokens; both 32 channels, T=2
    assert seen == [((2, 2, 32, 2, 1), (2, 2, 32, 2, 2))]


def test_cross_attention_masks_gate_the_other_modalitys_keys():
    torch.manual_seed(0)
    cross = CrossModalQKAttention(8, 6, neuron=NeuronConfig())
    a = torch.randint(0, 3, (2, 3, 8, 4, 4)).float()  # integer streams, 16 audio tokens
    v = torch.randint(0, 3, (2, 3, 6, 2, 3)).float()  # 6 video tokens: token counts may differ
    cross = recalibrate_bn(cross.train(), [])  # keep init BN stats; eval mode below
    cross.train()
    with torch.no_grad():
        a_out, v_out = cross(a, v)
        from_audio, from_video = cross.masks(a.flatten(3), v.flatten(3))
    assert a_out.shape == a.shape and v_out.shape == v.shape
    assert from_audio.shape == (2, 3, 6, 1) and from_video.shape == (2, 3, 8, 1)  # one bit per channel
    assert set(from_audio.unique().tolist()) <= {0.0, 1.0}
    # residual of integer streams plus spikes: still integers
    assert torch.equal(a_out, a_out.round()) and torch.equal(v_out, v_out.round())

    # If audio's Q never fires, video's K is gated off entirely: proj sees zeros.
    seen = {}
    cross.proj_video.register_forward_hook(lambda m, i, o: seen.setdefault("in", i[0].clone()))
    with torch.no_grad():
        cross.q_audio.conv.weight.zero_()
        cross.q_audio.bn.bias.fill_(-10.0)  # no Q spikes from audio
        cross(a, v)
    assert torch.count_nonzero(seen["in"]) == 0


def test_samples_do_not_influence_each_other():
    model = _model("qk", fusion_stage=1)
    batch = model.example_batch(4)
    _active(model, batch)
    with torch.no_grad():
        full = model(batch)
        single = model({k: v[1:2] for k, v in batch.items()})
    torch.testing.assert_close(full[1:2], single)


def test_every_part_of_the_qk_model_learns():
    model = _model("qk", fusion_stage=0)
    batch = model.example_batch(4)
    out = model.forward_all(batch)
    (out["logits"].sum() + out["audio"].sum() + out["video"].sum()).backward()
    for prefix in ("audio.stages.0", "video.stages.0", "cross.q_audio", "cross.k_video", "cross.proj_audio"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert grads and all(g is not None for g in grads), prefix
        assert any(g.abs().sum() > 0 for g in grads), prefix


def test_bad_fusion_settings_are_one_line_errors():
    with pytest.raises(UserError, match="unknown fusion 'film'; choose one of concat, sum, qk"):
        _model("film")
    with pytest.raises(UserError, match="fusion_stage 3: the encoders have 3 stages"):
        _model("qk", fusion_stage=3)
    model = _model("qk")
    batch = model.example_batch(1)
    batch["video"] = batch["video"][:, :1]
    with pytest.raises(ValueError, match="audio has 2 time steps but video has 1"):
        model(batch)


@pytest.mark.parametrize("fusion", ["concat", "qk"])
def test_probe_heads_learn_without_steering_the_encoders(fusion):
    model = _model(fusion)
    out = model.forward_all(model.example_batch(2), detach_heads=True)
    (out["audio"].sum() + out["video"].sum()).backward()
    assert model.audio_head.weight.grad is not None and model.video_head.weight.grad is not None
    encoders = [*model.audio.parameters(), *model.video.parameters()]
    assert all(p.grad is None for p in encoders)
