"""A clip's profile does not depend on what else is in its batch or split.

Input kinds come from the model's structure (hardware/profile/kinds.py), the other tools' buckets
are decided per sample, and every per-sample count is additive: profiling N clips as one batch, one
at a time, shuffled or in batches of mixed sizes gives the same per-sample numbers, and a clip
profiled alone gives the numbers it contributes inside any batch. The one exception is the paper
rule for spike×spike products (split-level firing rates), which is flagged and tested as such.

Tolerance: counts (spikes, events of spike/integer inputs, MACs, tool buckets) are integers summed
exactly in float32/float64 and Python floats, so they are compared with ``==``. Sums of real values
(|x| of the data reaching the stem conv: ``input_mean``, its value-weighted events) are float32
reductions whose grouping depends on how many rows a call holds, so they agree to float32 rounding:
``rel=1e-6`` (≈ 16 float32 ulps; observed differences are a few ulps). Ratios of exact counts
(firing rates, non-zero shares) computed from different partial sums agree to ``rel=1e-12``.
"""

from __future__ import annotations

import math

import pytest
import torch

from qkf_snn.hardware.profile import CountOptions, convention_totals, layer_counts, profile_model
from qkf_snn.models import create_model, recalibrate_bn

N = 4
# Per-sample sums over clips (compared as the mean of clips profiled alone).
ADDITIVE = {
    "spikes", "spikes_per_step", "membrane_updates", "active_updates", "dense_macs",
    "valid_connections", "events_value", "events_nonzero", "events_per_step", "neurobench_ac",
    "neurobench_mac", "spikingjelly_synops", "dense_ops", "count", "elements_per_sample",
}  # fmt: skip
RATIOS = {"firing_rate", "firing_rate_per_step", "input_nonzero_share", "nonzero_share", "input_mean", "mean"}
MAXIMA = {"input_max", "max"}  # the largest value seen: a split-level maximum by definition
REAL_SUMS = {"input_mean", "events_value", "events_per_step"}  # of real-valued inputs only


@pytest.fixture(scope="module")
def case():
    """qkf_av_tiny (QKTA, QKTA, SSA stages) and 4 clips: uniform noise, an all-zero clip and a
    binary clip, so a value-based kind decision would differ between the clips and the batch."""
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny", audio_input_size=(32, 32), video_input_size=(32, 32), time_steps=2)
    batch = {k: torch.rand_like(v) for k, v in model.example_batch(N).items()}
    recalibrate_bn(model, [batch])
    for v in batch.values():
        v[1] = 0.0  # clip 1: all zeros
        v[2] = (v[2] > 0.5).float()  # clip 2: binary data
    return model.eval(), batch


def clips(batch: dict, idx: list[int]) -> dict:
    return {k: v[idx] for k, v in batch.items()}


def records(profile) -> dict[str, dict]:
    doc = profile.to_dict()
    return {
        r["name"] + "/" + key: r for key in ("neurons", "synapses", "products", "others") for r in doc[key]
    }


def real_layer(record: dict) -> bool:
    return record.get("input_kind") == "real" or any(o["kind"] == "real" for o in record.get("operands", []))


def assert_same(a, b, *, field: str, real: bool) -> None:
    """Equal: exactly for counts, to float32 rounding for sums of real values (module doc)."""
    if isinstance(a, dict):
        for key in a:
            assert_same(a[key], b[key], field=key, real=real)
    elif isinstance(a, list):
        assert len(a) == len(b), field
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, field=field, real=real)
    elif isinstance(a, float) and real and field in REAL_SUMS:
        assert a == pytest.approx(b, rel=1e-6), field
    else:
        assert a == b, field


def test_batching_does_not_change_per_sample_numbers(case):
    """One batch of 4, 4 batches of 1, a shuffled batch and batches of mixed sizes: the same split,
    the same numbers, whatever the batching."""
    model, batch = case
    runs = {
        "one batch": [batch],
        "one at a time": [clips(batch, [i]) for i in range(N)],
        "shuffled": [clips(batch, [2, 0, 3, 1])],
        "mixed sizes": [clips(batch, [3, 1]), clips(batch, [0]), clips(batch, [2])],
    }
    profiles = {k: profile_model(model, v) for k, v in runs.items()}
    reference = records(profiles["one batch"])
    for name, profile in profiles.items():
        assert profile.samples == N
        got = records(profile)
        assert got.keys() == reference.keys(), name
        for key, record in reference.items():
            assert_same(record, got[key], field=key, real=real_layer(record))


def test_a_clip_alone_gives_what_it_contributes_to_any_batch(case):
    """Each clip profiled alone; the batch's per-sample numbers are the mean of the clips'
    (exactly for counts), maxima are the maximum, kinds and roles are the same."""
    model, batch = case
    alone = [records(profile_model(model, [clips(batch, [i])])) for i in range(N)]
    together = records(profile_model(model, [batch]))
    for key, record in together.items():
        real = real_layer(record)
        for field, value in record.items():
            values = [a[key][field] for a in alone]
            if field == "operands":
                for j, operand in enumerate(value):
                    ops = [v[j] for v in values]
                    assert operand["kind"] == ops[0]["kind"] and {o["kind"] for o in ops} == {operand["kind"]}
                    assert operand["max"] == max(o["max"] for o in ops)
                    for f in ("nonzero_share", "mean"):
                        assert operand[f] == pytest.approx(sum(o[f] for o in ops) / N, rel=1e-12)
            elif field in ADDITIVE:
                assert_same(value, _mean(values), field=field, real=real)
            elif field in RATIOS:
                tol = 1e-6 if real and field in REAL_SUMS | {"input_mean"} else 1e-12
                assert _flat(value) == pytest.approx(_flat(_mean(values)), rel=tol), (key, field)
            elif field in MAXIMA:
                assert value == max(values), (key, field)
            elif field == "binary_output":
                assert value == all(values)
            else:  # name, kind, role, shapes, per-step sizes: structure
                assert all(v == value for v in values), (key, field)


def _mean(values: list):
    if isinstance(values[0], list):
        return [_mean(list(col)) for col in zip(*values, strict=True)]
    return math.fsum(values) / len(values) if isinstance(values[0], float) else values[0]


def _flat(value):
    return value if isinstance(value, list) else [value]


def test_convention_totals_are_additive_except_split_level_products(case):
    """Every convention's total for the batch is the mean of the clips' totals, also with
    ``integer_inputs="mac"`` (a value-based kind made it 3 % higher as one batch); the paper rule's
    spike×spike products (min(fr_a, fr_b) of the split's rates) are the flagged exception."""
    model, batch = case
    alone = [profile_model(model, [clips(batch, [i])], audit=False) for i in range(N)]
    together = profile_model(model, [batch], audit=False)
    for options in (CountOptions(), CountOptions(integer_inputs="mac", first_layer="once")):
        t = convention_totals(together, options)
        a = [convention_totals(p, options) for p in alone]
        for conv in ("exact", "neurobench", "spikingjelly", "ann"):
            for key in t[conv]:
                assert t[conv][key] == pytest.approx(math.fsum(x[conv][key] for x in a) / N, rel=1e-9), conv
        assert t["paper"]["mac"] == math.fsum(x["paper"]["mac"] for x in a) / N  # MACs: exact counts
        additive = t["paper"]["ac"] - t["paper"]["split_level_ac"]
        assert additive == pytest.approx(
            math.fsum(x["paper"]["ac"] - x["paper"]["split_level_ac"] for x in a) / N
        )
        split = {c.name for c in layer_counts(together, options) if c.split_level}
        assert split and all(".kv" in n or ".mask" in n for n in split)  # SSA Kᵀ·V, QKTA mask ⊙ K
        assert t["paper"]["split_level_ac"] > 0


def test_all_zero_and_binary_data_keep_the_stem_a_mac_layer(case):
    """The stem conv reads the data: real-valued MACs under the paper convention even when the data
    are all zeros or all 0/1 (a value-based decision counted it as a spike layer: 0 MAC)."""
    model, batch = case
    for clip in (1, 2):  # all zeros, binary
        profile = profile_model(model, [clips(batch, [clip])], audit=False)
        stems = [s for s in profile.synapses if s.name.endswith("stages.0.embed.layers.0.conv")]
        assert len(stems) == 2  # audio and video
        counts = {c.name: c for c in layer_counts(profile, CountOptions())}
        for s in stems:
            assert (s.input_kind, s.role) == ("real", "analog")
            assert counts[s.name].paper_mac == s.dense_macs > 0 and counts[s.name].paper_ac == 0
            assert counts[s.name].ann_mac == s.dense_macs / profile.time_steps
        others = [s for s in profile.synapses if s not in stems and s.role != "head"]
        assert {s.input_kind for s in others} == {"spike", "integer"}
