"""The ``folder`` dataset: bring-your-own data in each layout, written here with the synth writers.

Every test writes its own small set: videos with sound in six containers, paired audio/image and
audio/frames folders, video-only and audio-only sets, and manifests with relative paths. Edge cases:
a class with one clip, a clip without its partner, a video without an audio track, mixed containers
and sample rates, unicode and spaces in names, a label that differs between partners.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from qkf_snn.datasets import CachedAVDataset, prepare
from qkf_snn.datasets.cache import CacheIndex, open_array
from qkf_snn.datasets.clip import decode_clip
from qkf_snn.datasets.features import FeatureParams
from qkf_snn.datasets.folder import frame_files
from qkf_snn.datasets.records import ClipRecord
from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import SynthKnobs
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.datasets.synth.writers import CONTAINERS, write_audio, write_jpg, write_video
from qkf_snn.errors import UserError

QKF = Path(sys.executable).parent / "qkf"  # the installed console script, as users call it
TINY = dict(time_steps=2, image_size=16, n_mels=16, audio_width=8, clip_seconds=1.0, progress=False)
KNOBS = SynthKnobs(
    seconds=1.0, fps=8, audio_noise=0.1, video_noise=0.05, audio_missing=0.0, video_missing=0.0
)
CLASSES = ("cat", "dög walk", "solo")  # sorted; "solo" has one clip


def _missing_encoders() -> dict[str, str]:
    """suffix -> what this PyAV / libsndfile build cannot write for it (PyAV wheels bundle them all)."""
    missing = {}
    for suffix, (_fmt, *codecs) in CONTAINERS.items():
        for codec in codecs:
            try:
                av.codec.Codec(codec, "w")
            except av.codec.codec.UnknownCodecError:
                missing[suffix] = f"PyAV has no {codec} encoder"
    for suffix, fmt in ((".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")):
        if fmt not in sf.available_formats():
            missing[suffix] = f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}"
    return missing


MISSING = _missing_encoders()


def need_encoder(path: Path) -> None:
    if path.suffix.lower() in MISSING:
        pytest.skip(f"{path.name}: {MISSING[path.suffix.lower()]}")


def media(label: int, seed: int, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """A class-dependent waveform and 8 frames (the synth sets' sounds and shapes)."""
    rng = np.random.default_rng(seed)
    wave = clip_audio(label, len(CLASSES), KNOBS, rng, sample_rate=sample_rate)
    return wave, clip_video(label, 8, KNOBS, rng)


def video(path: Path, label: int, seed: int, sample_rate: int | None = 16000) -> None:
    need_encoder(path)
    wave, frames = media(label, seed, sample_rate or 16000)
    write_video(path, frames, KNOBS.fps, None if sample_rate is None else wave, sample_rate or 16000)


# Videos with sound: every container, sample rates from 16 to 48 kHz, unicode and spaces in names.
VIDEOS = {
    "cat/a.mp4": 16000,
    "cat/b.mkv": 22050,
    "cat/c.webm": 48000,
    "cat/d.mp4": 44100,
    "dög walk/ünï 1.avi": 44100,
    "dög walk/x 2.mov": 16000,
    "dög walk/y.flv": 22050,
    "dög walk/z.mp4": 16000,
    "solo/only one.mp4": 16000,
}


@pytest.fixture(scope="module")
def videos_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder") / "my set"
    for i, (name, rate) in enumerate(VIDEOS.items()):
        video(root / name, CLASSES.index(name.split("/")[0]), i, rate)
    video(root / "cat" / "silent.mp4", 0, 99, sample_rate=None)  # a video without an audio track
    (root / "cat" / "notes.txt").write_text("recorded in May\n")
    return root


def reasons(report) -> dict[str, str]:
    return {s.path: s.reason for s in report.skipped_clips}


def test_videos_with_sound(videos_raw: Path, tmp_path: Path) -> None:
    report = prepare("folder", videos_raw, tmp_path / "c", **TINY)
    assert (report.found, report.prepared, report.skipped) == (11, 9, 2)
    assert reasons(report) == {
        "cat/silent.mp4": "no audio track in silent.mp4",
        "cat/notes.txt": "unsupported file type '.txt' (expected .mp4, .mkv, .avi, .flv, .webm, .mov)",
    }
    index = CacheIndex.load(tmp_path / "c")
    assert index.class_names == list(CLASSES)  # sorted names, written in the index
    ids = {c["id"]: c for c in index.clips}
    assert set(ids) == {name.rsplit(".", 1)[0] for name in VIDEOS}
    for clip_id, clip in ids.items():
        assert index.class_names[clip["label"]] == clip_id.split("/")[0]
    assert {c["split"] for c in index.clips} == {"train", "val", "test"}
    assert ids["solo/only one"]["split"] == "train"
    assert report.split == "stratified" and report.notes == ["class 'solo' (1 clip) has no val or test clip"]


def test_cache_rows_hold_the_decoded_clip_they_name(videos_raw: Path, tmp_path: Path) -> None:
    """Rows line up with ids: the cached arrays of a clip equal decoding its file directly."""
    prepare("folder", videos_raw, tmp_path / "c", **TINY)
    index = CacheIndex.load(tmp_path / "c")
    params = FeatureParams(**{k: v for k, v in TINY.items() if k != "progress"})
    audio, frames = open_array(tmp_path / "c", index, "audio"), open_array(tmp_path / "c", index, "video")
    for name in ("dög walk/ünï 1.avi", "cat/c.webm", "cat/b.mkv"):
        path = videos_raw / name
        row = [c["id"] for c in index.clips].index(name.rsplit(".", 1)[0])
        arrays = decode_clip(ClipRecord("x", "y", path, (path,), "container", "x"), params)
        assert np.array_equal(audio[row], arrays.audio.astype(np.float16))
        assert np.array_equal(frames[row], arrays.video)
        assert np.abs(arrays.audio.std()) > 0 and arrays.video.std() > 0


def test_video_only_prepares_a_video_without_audio_track(videos_raw: Path, tmp_path: Path) -> None:
    report = prepare("folder", videos_raw, tmp_path / "v", modalities=("video",), **TINY)
    assert (report.found, report.prepared, report.skipped) == (11, 10, 1)
    assert list(reasons(report)) == ["cat/notes.txt"]
    index = CacheIndex.load(tmp_path / "v")
    assert index.modalities == ["video"] and "cat/silent" in {c["id"] for c in index.clips}


def test_undecodable_files_are_skipped_with_the_reason(tmp_path: Path) -> None:
    for name in ("cat/a.mp4", "cat/b.mp4", "cat/c.mp4", "dög walk/d.mkv"):
        video(tmp_path / "raw" / name, 0, len(name))
    (tmp_path / "raw" / "cat" / "broken.mp4").write_bytes(b"not a video at all")
    cut = tmp_path / "raw" / "dög walk" / "cut.mp4"
    video(cut, 1, 7)
    cut.write_bytes(cut.read_bytes()[:2000])  # a download that stopped early
    av_report = prepare("folder", tmp_path / "raw", tmp_path / "av", **TINY)
    video_report = prepare("folder", tmp_path / "raw", tmp_path / "v", modalities=("video",), **TINY)
    for report, what in ((av_report, "audio track"), (video_report, "video")):
        assert (report.found, report.prepared, report.skipped) == (6, 4, 2)
        assert reasons(report) == {
            "cat/broken.mp4": f"cannot decode {what}: Invalid data found when processing input",
            "dög walk/cut.mp4": f"cannot decode {what}: Invalid data found when processing input",
        }


def test_resumable_and_parallel_give_the_same_cache(videos_raw: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    one = prepare(
        "folder", videos_raw, tmp_path / "one", **{**TINY, "progress": lambda d, t: seen.append((d, t))}
    )
    assert seen[-1] == (10, 10)  # the bar counts every clip that reaches decoding (the .txt never does)
    again = prepare("folder", videos_raw, tmp_path / "one", **TINY)
    assert (again.decoded, again.reused, again.prepared) == (0, 10, 9)  # its failure is reused too
    assert again.found == again.prepared + again.skipped == 11
    two = prepare("folder", videos_raw, tmp_path / "two", workers=2, **TINY)
    assert (two.prepared, two.skipped, two.decoded) == (one.prepared, one.skipped, 10)
    a, b = CacheIndex.load(tmp_path / "one"), CacheIndex.load(tmp_path / "two")
    assert a.clips == b.clips
    for m in ("audio", "video"):
        assert np.array_equal(open_array(tmp_path / "one", a, m), open_array(tmp_path / "two", b, m))


# --- paired files ------------------------------------------------------------------------------------


def write_paired(root: Path, visual: str) -> None:
    """audio/<class>/ in four formats and rates with image/ or frames/ partners, plus the edge cases."""
    sounds = {"cat/a 1.wav": 16000, "cat/b.flac": 22050, "cat/c.ogg": 44100, "cat/d.mp3": 48000}
    sounds |= {"dög walk/é.wav": 8000, "dög walk/f.flac": 16000, "dög walk/g.mp3": 22050}
    sounds |= {"solo/h.ogg": 16000, "cat/lonely.wav": 16000, "cat/swapped.wav": 16000}
    for i, (name, rate) in enumerate(sounds.items()):
        label, stem = name.split("/")[0], Path(name).stem
        wave, frames = media(CLASSES.index(label), i, rate)
        need_encoder(root / "audio" / name)
        write_audio(root / "audio" / name, wave, rate)
        if stem == "lonely":
            continue  # a clip without its partner
        label = "dög walk" if stem == "swapped" else label  # the partner sits in another class
        if visual == "image":
            write_jpg(root / "image" / label / f"{stem}{'.png' if i % 2 else '.jpg'}", frames[0])
        else:
            for j in (1, 2, 10):
                write_jpg(root / "frames" / label / stem / f"frame_{j}.jpg", frames[j % 8])
    if visual == "frames":
        (root / "frames" / "cat" / "empty").mkdir()


@pytest.mark.parametrize("visual", ["image", "frames"])
def test_paired_audio_with_images_or_frames(visual: str, tmp_path: Path) -> None:
    write_paired(tmp_path / "raw", visual)
    report = prepare("folder", tmp_path / "raw", tmp_path / "c", **TINY)
    expected = {
        "audio/cat/lonely.wav": f"missing partner file: no {visual}/cat/lonely.* beside audio/cat/lonely.wav",
        "audio/cat/swapped.wav": f"wrong label: audio/cat/ but {visual}/dög walk/ for the same clip name",
    }
    if visual == "frames":
        expected["frames/cat/empty"] = "no frames (.jpg, .jpeg, .png) in the folder"
    assert reasons(report) == expected
    assert (report.found, report.prepared) == (8 + len(expected), 8)
    index = CacheIndex.load(tmp_path / "c")
    assert index.class_names == list(CLASSES) and index.modalities == ["audio", "video"]
    ds = CachedAVDataset(tmp_path / "c", "train")
    assert ds[0]["video"].shape == (2, 3, 16, 16) and ds[0]["audio"].shape == (2, 1, 16, 8)


def test_frames_are_read_in_natural_order(tmp_path: Path) -> None:
    for name in ("frame_10.jpg", "frame_2.jpg", "frame_1.jpg", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in frame_files(tmp_path)] == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]


def test_a_modality_not_asked_for_is_never_required(tmp_path: Path) -> None:
    write_paired(tmp_path / "raw", "image")
    audio = prepare("folder", tmp_path / "raw", tmp_path / "a", modalities=("audio",), **TINY)
    assert (audio.found, audio.prepared, audio.skipped) == (10, 10, 0)  # lonely and swapped included
    image = prepare("folder", tmp_path / "raw", tmp_path / "i", modalities=("video",), **TINY)
    assert (image.found, image.prepared, image.skipped) == (9, 9, 0)
    assert "dög walk/swapped" in {c["id"] for c in CacheIndex.load(tmp_path / "i").clips}


def test_a_class_named_like_a_layout_folder_is_a_class(tmp_path: Path) -> None:
    for i, name in enumerate(("audio/a.mp4", "audio/b.mp4", "audio/c.webm", "video/d.mp4", "video/e.mov")):
        video(tmp_path / "raw" / name, i % 2, i)
    report = prepare("folder", tmp_path / "raw", tmp_path / "c", **TINY)
    assert (report.found, report.prepared) == (5, 5)
    assert CacheIndex.load(tmp_path / "c").class_names == ["audio", "video"]


def test_unimodal_sets(tmp_path: Path) -> None:
    for i, label in enumerate(("cat", "cat", "cat", "dög walk", "dög walk", "dög walk")):
        video(tmp_path / "vid" / "video" / label / f"{i}.mkv", CLASSES.index(label), i, sample_rate=None)
        need_encoder(tmp_path / f"{i}.flac")
        write_audio(tmp_path / "aud" / "audio" / label / f"{i}.flac", media(0, i)[0], 16000)
    report = prepare("folder", tmp_path / "vid", tmp_path / "v", modalities=("video",), **TINY)
    assert (report.prepared, report.skipped) == (6, 0)
    report = prepare("folder", tmp_path / "aud", tmp_path / "a", modalities=("audio",), **TINY)
    assert (report.prepared, report.skipped) == (6, 0)
    with pytest.raises(
        UserError, match=r"no audio/ folder \(only video/\); prepare it with --modalities video"
    ):
        prepare("folder", tmp_path / "vid", tmp_path / "v2", **TINY)
    with pytest.raises(
        UserError, match=r"no video/, image/ or frames/ folder \(only audio/\); prepare it with"
    ):
        prepare("folder", tmp_path / "aud", tmp_path / "a2", **TINY)


# --- manifest ----------------------------------------------------------------------------------------


def write_manifest(root: Path, header: str, rows: list[str]) -> Path:
    """Media under root/media/, the manifest in root/lists/ naming them as ../media/..."""
    for i in range(9):
        label = CLASSES[i % 2]
        wave, frames = media(i % 2, i, (16000, 22050, 44100)[i % 3])
        write_audio(root / "media" / f"clip {i}.wav", wave, (16000, 22050, 44100)[i % 3])
        write_jpg(root / "media" / f"clip {i}.jpg", frames[0])
        video(root / "media" / f"ví {i}.mp4", CLASSES.index(label), 50 + i)
    path = root / "lists" / "my list.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_manifest_with_relative_paths_splits_and_spans(tmp_path: Path) -> None:
    rows = [f"{CLASSES[i % 2]},../media/clip {i}.wav,../media/clip {i}.jpg,{'test' if i < 2 else 'train'},,"
            for i in range(9)]  # fmt: skip
    rows[8] = "cat,../media/ví 8.mp4,../media/clip 8.jpg,train,0.25,0.75"  # a video's sound, a span
    rows += [
        "cat,../media/gone.wav,../media/clip 0.jpg,train,,",  # a missing file
        ",../media/clip 1.wav,../media/clip 1.jpg,train,,",  # no label
        "cat,../media/clip 2.wav,../media/clip 2.jpg,training,,",  # a split the manifest got wrong
        "cat,../media/clip 3.wav,../media/clip 3.jpg,train,0.8,0.3",  # an empty span
        "cat,../media/clip 4.wav,../media/clip 4.jpg,,,",  # no split where the others have one
    ]
    manifest = write_manifest(tmp_path, "label,audio,image,split,start,end", rows)
    report = prepare("folder", None, tmp_path / "c", manifest=manifest, **TINY)
    assert reasons(report) == {
        "my list.csv:11": "missing file ../media/gone.wav",
        "my list.csv:12": "wrong label: the label cell is empty",
        "my list.csv:13": "unknown split 'training' (expected train, val, test)",
        "my list.csv:14": "empty span 0.8-0.3 s",
        "my list.csv:15": "empty split cell (expected train, val, test)",
    }
    assert (report.found, report.prepared, report.skipped) == (14, 9, 5)
    assert report.split == "manifest"
    assert report.notes == ["no val rows in the manifest: val is a stratified 10% of train"]
    index = CacheIndex.load(tmp_path / "c")
    by_id = {c["id"]: c for c in index.clips}
    assert by_id["../media/clip 0"]["split"] == by_id["../media/clip 1"]["split"] == "test"
    assert {c["split"] for c in index.clips} == {"train", "val", "test"}
    assert by_id["../media/ví 8@0.25-0.75"]["seconds"] == 0.5  # the span, not the whole 1 s clip
    assert index.class_names == ["cat", "dög walk"]


def test_manifest_groups_stay_on_one_side(tmp_path: Path) -> None:
    rows = [f"{CLASSES[i % 2]},../media/ví {i}.mp4,speaker {i // 2}" for i in range(9)]
    manifest = write_manifest(tmp_path, "label,video,group", rows)
    report = prepare("folder", None, tmp_path / "c", manifest=manifest, **TINY)
    assert report.split == "group" and report.prepared == 9
    sides: dict[str, set[str]] = {}
    for clip in CacheIndex.load(tmp_path / "c").clips:
        sides.setdefault(clip["group"], set()).add(clip["split"])
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 5
    # --raw, when given, is the folder the manifest's relative paths start from
    moved = tmp_path / "elsewhere.csv"
    moved.write_text(manifest.read_text().replace("../media/", "media/"))
    again = prepare("folder", tmp_path, tmp_path / "c2", manifest=moved, split="stratified", **TINY)
    assert again.split == "stratified" and again.prepared == 9


# --- one line for a wrong root or manifest ---------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("label,video\n", {}, "--manifest {m}: no data rows"),
        ("name,audio\ncat,x.wav\n", {}, "--manifest {m}: no 'label' column (columns: name, audio)"),
        ("label,path\ncat,x.wav\n", {}, "--manifest {m}: no video, audio or image column (columns: l"),
        ("label,image\ncat,x.jpg\n", {}, "--manifest {m}: no audio or video column; prepare it with --mo"),
        ("label,video\ncat,x.mp4\n", {}, "--manifest {m}: none of its files exist (paths are relative to"),
        ("label,audio\ncat,x.wav\n", {"dataset": "crema"}, "--manifest applies to folder only, not crema"),
        (None, {}, "--manifest {m}: no such file"),
        ("dirs:cat/a.mp4,dog", {}, "--raw {t}: class folder dog/ holds no video (.mp4, .mkv, .avi"),
        ("dirs:audio/cat/a.wav,audio/dog,image/cat/a.jpg", {}, "--raw {t}: class folder audio/dog/ is empty"),
        ("dirs:video/cat/a.mp4,image/cat/a.jpg", {}, "--raw {t}: holds video/ and image/; give one kind"),
        ("dirs:", {}, "--raw {t}: no class folders (expected <class>/<clip>.mp4"),
    ],
)  # fmt: skip
def test_a_wrong_root_or_manifest_is_one_line(
    setup: str | None, args: dict, message: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    use_manifest = setup is None or not setup.startswith("dirs:")
    if setup is not None and use_manifest:
        manifest.write_text(setup)
    elif setup is not None:
        for name in filter(None, setup[5:].split(",")):
            path = tmp_path / name
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                video(path, 0, 0) if path.suffix == ".mp4" else path.write_bytes(b"x")
            else:
                path.mkdir(parents=True, exist_ok=True)
    dataset = args.get("dataset", "folder")
    extra = {"manifest": manifest} if use_manifest else {}
    raw = tmp_path if dataset == "crema" or not use_manifest else None
    with pytest.raises(UserError) as err:
        prepare(dataset, raw, tmp_path / "out", **extra, **TINY)
    text = str(err.value)
    assert text.startswith(message.format(m=manifest, t=tmp_path)) and "\n" not in text, text


def test_raw_is_required_without_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--raw: missing \(the raw dataset root: <class>/<clip>.mp4"):
        prepare("folder", None, tmp_path / "out", **TINY)


# --- through the console script ----------------------------------------------------------------------


def qkf(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([QKF, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_prepare_and_train_through_the_console_script(videos_raw: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    size = ["--clip-seconds", "1", "--time-steps", "2", "--image-size", "16", "--n-mels", "16"]
    result = qkf("data", "prepare", "folder", "--raw", videos_raw, "--out", cache, *size,
                 "--audio-width", "8", "--workers", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "folder: found 11, prepared 9, skipped 2 (train 5, val 2, test 2; split stratified)" in result.stdout
    )
    assert "skipped cat/silent.mp4: no audio track in silent.mp4" in result.stdout
    assert "note: class 'solo' (1 clip) has no val or test clip" in result.stdout
    flags = "--size tiny --dims 8 16 16 --num-heads 1 1 1 --batch-size 4 --workers 0 --epochs 1 --threads 1"
    flags += " --ogm-ge --ogm-end 0 --aux-weight 0.3 --fusion qk --fusion-stage 1 --time-step 1"
    result = qkf("train", "folder", "--data", cache, "--out", tmp_path / "runs", "--name", "r",
                 *flags.split(), "--progress", "lines")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test (best epoch 1, chosen on val)" in result.stdout
    config = (tmp_path / "runs" / "r" / "config.yaml").read_text()
    assert "dataset: folder" in config and "configs/folder_av.yaml" in config
    results = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    assert results["class_names"] == list(CLASSES) and "folder cache" in results["protocol"]


@pytest.mark.slow
def test_manifest_through_the_console_script(tmp_path: Path) -> None:
    rows = [f"{CLASSES[i % 2]},../media/ví {i}.mp4,{'test' if i < 2 else 'train'}" for i in range(9)]
    manifest = write_manifest(tmp_path, "label,video,split", rows)
    size = [
        "--clip-seconds",
        "1",
        "--time-steps",
        "2",
        "--image-size",
        "16",
        "--n-mels",
        "16",
        "--no-progress",
    ]
    result = qkf("data", "prepare", "folder", "--manifest", manifest, "--out", tmp_path / "c", *size)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "folder: found 9, prepared 9, skipped 0 (train 5, val 2, test 2; split manifest)"
    )  # val: one clip of each class's train rows (4 and 3)
    assert "note: no val rows in the manifest: val is a stratified 10% of train\n" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("class,video\ncat,x.mp4\n")
    result = qkf("data", "prepare", "folder", "--manifest", bad, "--out", tmp_path / "c2", *size)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: --manifest {bad}: no 'label' column (columns: class, video)\n"


@pytest.fixture(scope="module")
def paired_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paired")
    write_paired(root / "raw", "frames")
    prepare("folder", root / "raw", root / "cache", **TINY)
    return root / "cache"


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["audio", "video", "av"])
def test_train_folder_each_modality_with_its_recipe(
    paired_cache: Path, modality: str, tmp_path: Path
) -> None:
    from qkf_snn.training import compose
    from qkf_snn.training.loop import train

    overrides = {"data.dir": str(paired_cache), "data.batch_size": 4, "data.workers": 0, "optim.epochs": 1}
    overrides |= {"model.size": "tiny", "model.dims": [8, 16, 16], "model.heads": [1, 1, 1]}
    overrides |= {"run.out": str(tmp_path), "run.progress": "none", "run.threads": 1}
    cfg = compose("folder", modality, overrides=overrides)
    assert cfg.recipe is not None and cfg.recipe.endswith(f"configs/folder_{modality}.yaml")
    result = train(cfg)
    assert result.epochs_run == 1 and (cfg.run_dir / "best.pt").is_file()
    assert np.sum(result.test["confusion"]) == len(CachedAVDataset(paired_cache, "test"))
    assert json.loads((cfg.run_dir / "results.json").read_text())["class_names"] == list(CLASSES)
