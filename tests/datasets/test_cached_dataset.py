"""CachedAVDataset: the contract other packages code against, and reading without decoding."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from qkf_snn.datasets import CachedAVDataset, prepare
from qkf_snn.datasets import media as media_module
from qkf_snn.errors import UserError


def test_sample_contract(crema_cache: Path) -> None:
    ds = CachedAVDataset(crema_cache, "train")
    sample = ds[0]
    assert set(sample) == {"audio", "video", "label", "index"}
    assert sample["audio"].shape == (4, 1, 32, 16) and sample["audio"].dtype == torch.float32
    assert sample["video"].shape == (4, 3, 32, 32) and sample["video"].dtype == torch.float32
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == () and sample["index"] == 0
    assert (ds.time_steps, ds.audio_shape, ds.video_shape) == (4, (1, 32, 16), (3, 32, 32))
    assert ds.num_classes == 6 and ds.class_names == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    assert ds.modalities_available == ("audio", "video")
    assert ds.labels == [int(ds[i]["label"]) for i in range(len(ds))]
    sizes = [len(CachedAVDataset(crema_cache, s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 36 and all(sizes)


def test_train_split_is_normalised(crema_cache: Path) -> None:
    ds = CachedAVDataset(crema_cache, "train")
    audio = torch.stack([ds[i]["audio"] for i in range(len(ds))])
    video = torch.stack([ds[i]["video"] for i in range(len(ds))])
    assert abs(audio.mean()) < 0.01 and abs(audio.std() - 1) < 0.01
    assert torch.allclose(video.mean(dim=(0, 1, 3, 4)), torch.zeros(3), atol=0.01)


def test_single_modality_and_splits_are_disjoint(crema_cache: Path) -> None:
    audio_only = CachedAVDataset(crema_cache, "val", modalities=("audio",))
    assert set(audio_only[0]) == {"audio", "label", "index"}
    video_only = CachedAVDataset(crema_cache, "test", modalities=("video",))
    assert set(video_only[0]) == {"video", "label", "index"}
    ids = [set(CachedAVDataset(crema_cache, s).clip_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_fewer_time_steps_join_windows_and_pick_middle_frames(crema_cache: Path) -> None:
    full, half = CachedAVDataset(crema_cache, "train"), CachedAVDataset(crema_cache, "train", time_steps=2)
    a, b = full[3], half[3]
    assert b["audio"].shape == (2, 1, 32, 32) and half.audio_shape == (1, 32, 32)
    assert torch.equal(b["audio"][1], torch.cat([a["audio"][2], a["audio"][3]], dim=-1))
    assert torch.equal(b["video"], a["video"][[1, 3]])
    with pytest.raises(UserError, match=r"time_steps 3: must divide the cache's T=4"):
        CachedAVDataset(crema_cache, "train", time_steps=3)


def test_augmentation_keeps_shapes_and_changes_values(crema_cache: Path) -> None:
    torch.manual_seed(0)
    plain, aug = CachedAVDataset(crema_cache, "train"), CachedAVDataset(crema_cache, "train", augment=True)
    a, b = plain[0], aug[0]
    assert b["audio"].shape == a["audio"].shape and b["video"].shape == a["video"].shape
    assert not torch.equal(a["video"], b["video"]) or not torch.equal(a["audio"], b["audio"])


def test_dataloader_workers_read_without_decoding(crema_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache must be read without decoding")

    for name in ("read_audio", "read_video_frames", "read_image"):
        monkeypatch.setattr(media_module, name, no_decoding)
    ds = CachedAVDataset(crema_cache, "train")
    pickle.loads(pickle.dumps(ds))  # picklable for spawn-based workers too
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == len(ds)
    assert torch.equal(batches[0]["audio"][1], ds[1]["audio"])
    assert batches[0]["video"].shape == (8, 4, 3, 32, 32)


@pytest.mark.parametrize(
    ("split", "modalities", "message"),
    [
        ("dev", ("audio", "video"), "split 'dev': unknown (choose train, val, test)"),
        ("train", ("smell",), "modalities ('smell',): choose 'audio', 'video' or both"),
    ],
)
def test_bad_requests_are_one_line(crema_cache: Path, split: str, modalities: tuple, message: str) -> None:
    with pytest.raises(UserError) as info:
        CachedAVDataset(crema_cache, split, modalities=modalities)
    assert str(info.value) == message


def test_missing_modality_missing_cache_and_empty_split(crema_raw: Path, tmp_path: Path, small: dict) -> None:
    prepare("crema", crema_raw, tmp_path / "a", clip_seconds=1.0, modalities=("audio",), **small)
    with pytest.raises(UserError, match=r"cache .*: holds no video \(only audio; prepare with --modalities"):
        CachedAVDataset(tmp_path / "a", "train")
    with pytest.raises(
        UserError, match=r"cache .*nowhere: no such directory \(run `qkf data prepare` first\)"
    ):
        CachedAVDataset(tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"cache .*empty: no index.json \(not a prepared cache"):
        CachedAVDataset(tmp_path / "empty", "train")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    index = json.loads((tmp_path / "b" / "index.json").read_text())
    for clip in index["clips"]:
        clip["split"] = "train" if clip["split"] != "test" else "test"
    (tmp_path / "b" / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"cache .*b: index.json differs from the checksum recorded when"):
        CachedAVDataset(tmp_path / "b", "val", modalities=("audio",))  # an edited index is refused
    del index["checksums"]  # ... unless it has none (an older cache): then the empty split is named
    (tmp_path / "b" / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"cache .*b: split 'val' is empty"):
        CachedAVDataset(tmp_path / "b", "val", modalities=("audio",))
    for name in index["arrays"].values():
        (tmp_path / "b" / name).unlink()
    with pytest.raises(UserError, match=r"cache .*b: audio-.*\.npy is missing; `qkf data prepare` with"):
        CachedAVDataset(tmp_path / "b", "train", modalities=("audio",))


def test_cache_arrays_are_compact_and_memory_mapped(crema_cache: Path) -> None:
    ds = CachedAVDataset(crema_cache, "train")
    ds[0]
    arrays = ds._open()
    assert all(isinstance(a, np.memmap) for a in arrays.values())
    assert arrays["audio"].dtype == np.float16 and arrays["video"].dtype == np.uint8
