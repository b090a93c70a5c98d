"""Sampling that resumes and shards exactly, augmentation seeded per clip, build_dataset errors."""

from __future__ import annotations

import json

import pytest
import torch

from qkf_snn.errors import UserError
from qkf_snn.training.config import compose
from qkf_snn.training.data import EpochSampler, SeededView, build_dataset, make_loader, per_rank_batch


def test_epoch_order_depends_on_seed_and_epoch_only():
    s = EpochSampler(10, shuffle=True, seed=3)
    s.set_epoch(0)
    first = [i for i, _ in s]
    s.set_epoch(1)
    second = [i for i, _ in s]
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    s.set_epoch(0)
    assert [i for i, _ in s] == first
    assert [i for i, _ in EpochSampler(10, shuffle=True, seed=4)] != first


def test_resuming_at_a_position_yields_exactly_the_rest():
    s = EpochSampler(11, shuffle=True, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=6)
    assert list(s) == full[6:] and len(s) == 5
    assert all(epoch == 2 for _, epoch in full)


def test_ranks_split_an_epoch_without_overlap_and_eval_counts_each_clip_once():
    n, world = 11, 3
    train = [EpochSampler(n, shuffle=True, seed=0, rank=r, world_size=world) for r in range(world)]
    shares = [[i for i, _ in s] for s in train]
    assert {len(x) for x in shares} == {4}  # padded to 12, as DistributedSampler does
    assert set().union(*shares) == set(range(n))
    evals = [EpochSampler(n, shuffle=False, rank=r, world_size=world, pad=False) for r in range(world)]
    eval_shares = [[i for i, _ in s] for s in evals]
    assert sorted(sum(eval_shares, [])) == list(range(n))  # no padding: every clip exactly once


def test_global_batch_must_split_over_ranks():
    assert per_rank_batch(32, 4) == 8
    with pytest.raises(UserError, match="--batch-size 10: must be divisible by the 4 processes"):
        per_rank_batch(10, 4)


class _Augmenting(torch.utils.data.Dataset):
    augment = True

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"audio": torch.rand(3) + i, "label": torch.tensor(i)}


def test_augmentation_depends_on_seed_epoch_and_clip_not_on_global_rng():
    view = SeededView(_Augmenting(), seed=1)
    torch.manual_seed(123)
    a = view[(2, 0)]["audio"]
    state = torch.get_rng_state()
    torch.manual_seed(999)  # any global state, any call order
    view[(3, 0)]
    assert torch.equal(view[(2, 0)]["audio"], a)
    assert not torch.equal(view[(2, 1)]["audio"], a)  # another epoch, another draw
    torch.manual_seed(123)
    view[(2, 0)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched


def test_loader_batches_resume_mid_epoch():
    loader = make_loader(_Augmenting(), batch_size=2, train=True, seed=0, workers=0)
    loader.sampler.set_epoch(1)
    full = [b["audio"] for b in loader]
    loader.sampler.set_epoch(1, start=2)
    rest = [b["audio"] for b in loader]
    assert len(full) == 2 and len(rest) == 1
    assert torch.equal(rest[0], full[1])


def test_build_dataset_reads_the_configured_modalities(crema_cache):
    cfg = compose("crema", "audio", overrides={"data.dir": str(crema_cache)})
    ds = build_dataset(cfg, None, "val")
    item = ds[0]
    assert "audio" in item and "video" not in item
    assert item["audio"].shape == (2, 1, 16, 8)
    joined = build_dataset(compose("crema", "av", overrides={"data.time_steps": 1}), crema_cache, "train")
    assert joined.time_steps == 1 and joined[0]["audio"].shape == (1, 1, 16, 16)  # two windows side by side
    assert build_dataset(cfg.to_dict(), crema_cache, "test").time_steps == 2  # a checkpoint's dict works too


def test_build_dataset_errors_name_the_problem(crema_cache, crema_audio_only_cache, tmp_path):
    cfg = compose("crema", "av")
    with pytest.raises(UserError, match="--data: no cache given"):
        build_dataset(cfg, None, "train")
    with pytest.raises(UserError, match="no such directory"):
        build_dataset(cfg, tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no index.json"):
        build_dataset(cfg, tmp_path / "empty", "train")
    with pytest.raises(UserError, match="holds no video"):
        build_dataset(cfg, crema_audio_only_cache, "train")
    with pytest.raises(UserError, match="holds a crema cache, but the run is for ave"):
        build_dataset(compose("ave", "audio"), crema_cache, "train")
    with pytest.raises(UserError, match="time_steps 3: must divide the cache's T=2"):
        build_dataset(compose("crema", "av", overrides={"data.time_steps": 3}), crema_cache, "train")
    # an index without clips is an empty cache
    empty = tmp_path / "no-clips"
    empty.mkdir()
    index = json.loads((crema_cache / "index.json").read_text())
    (empty / "index.json").write_text(json.dumps({**index, "clips": [], "arrays": {}}))
    with pytest.raises(UserError, match="empty"):
        build_dataset(cfg, empty, "train")
