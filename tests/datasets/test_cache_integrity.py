"""A prepared cache is checked, not trusted: each tampering is one line per problem (exit 2) from
`qkf data info`, `qkf data info --verify` and `qkf train`; `--verify` compares every byte with the
checksums prepare recorded (exit 1 when they differ); `prepare` with the same arguments repairs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets import CacheError, prepare, verify_cache
from qkf_snn.datasets.cache import REPAIR, CacheIndex, open_array, read_npy_header

QKF = Path(sys.executable).with_name("qkf")
CLIP_SECONDS = 1.0  # the session crema_cache fixture's arguments (conftest.py), used again to repair


def _qkf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QKF), *args], capture_output=True, text=True, timeout=300)


def _qkf_together(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run several console commands at once (each mostly imports: this uses the second core)."""
    procs = [subprocess.Popen([str(QKF), *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]  # fmt: skip
    done = []
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess([str(QKF), *command], proc.returncode, out, err))
    return done


def _index(cache: Path) -> dict:
    return json.loads((cache / "index.json").read_text())


def _write_index(cache: Path, data: dict) -> None:
    (cache / "index.json").write_text(json.dumps(data))


def _array(cache: Path, modality: str) -> Path:
    return cache / _index(cache)["arrays"][modality]


def _contents(cache: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    index = CacheIndex.load(cache)
    return index.clips, {m: np.array(open_array(cache, index, m)) for m in index.modalities}


def truncate(cache: Path) -> str:
    path = _array(cache, "audio")
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    return f"{path.name} is truncated: {len(data) - 1000:,} bytes, its header declares {len(data):,}"


def overwrite_header(cache: Path) -> str:
    path = _array(cache, "video")
    data = bytearray(path.read_bytes())
    data[:10] = b"\x00" * 10
    path.write_bytes(bytes(data))
    return f"{path.name} is not a readable .npy file (the magic string is not correct"


def remove_entry(cache: Path) -> str:
    data = _index(cache)
    n = len(data["clips"])
    del data["clips"][n // 2]  # a row in the middle: every later row would pair with the wrong clip
    _write_index(cache, data)
    return f"{data['arrays']['audio']} holds {n} rows but index.json lists {n - 1} clips"


def label_outside(cache: Path) -> str:
    data = _index(cache)
    k = len(data["class_names"])
    data["clips"][3]["label"] = k
    _write_index(cache, data)
    clip = data["clips"][3]["id"]
    return f"index.json: clip {clip} has label {k}, outside the class list ({k} classes, labels 0-{k - 1})"


TAMPERINGS: dict[str, Callable[[Path], str]] = {
    "truncated npy": truncate,
    "overwritten npy header": overwrite_header,
    "entry removed from index.json": remove_entry,
    "label outside the class list": label_outside,
}


def _one_line_errors(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("error: cache ") for line in lines), done.stderr
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampering_is_refused_in_one_line_and_prepare_repairs_it(
    tamper: Callable[[Path], str], crema_raw: Path, crema_cache: Path, tmp_path: Path, small: dict
) -> None:
    cache = Path(shutil.copytree(crema_cache, tmp_path / "cache"))
    problem = tamper(cache)
    expected = f"error: cache {cache}: {problem}"

    *infos, train = _qkf_together(
        ["data", "info", str(cache)],
        ["data", "info", str(cache), "--verify"],
        ["train", "crema", "--data", str(cache), "--out", str(tmp_path / "runs"), "--epochs", "1"],
    )
    for done in infos:
        assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
        lines = _one_line_errors(done)
        assert lines[0].startswith(expected) and lines[0].endswith(f"; {REPAIR}"), lines
        if tamper is remove_entry:  # both arrays have one row too many: one line each
            assert len(lines) == 2 and "video-" in lines[1]
        else:
            assert len(lines) == 1, lines

    assert train.returncode == 2, train.stdout + train.stderr
    assert len(_one_line_errors(train)) == 1 and train.stderr.startswith(expected), train.stderr

    # The same arguments as the first prepare (conftest.py) repair it, to the same bytes.
    report = prepare("crema", crema_raw, cache, clip_seconds=CLIP_SECONDS, **small)
    assert (report.prepared, report.decoded, report.reused) == (36, 36, 0)
    note = report.notes[-1]
    assert note.startswith(f"the cache in {cache} was damaged ({problem}")
    assert note.endswith("): every clip decoded again")
    clips, arrays = _contents(cache)
    reference_clips, reference = _contents(crema_cache)
    assert clips == reference_clips and arrays.keys() == reference.keys()
    assert all(np.array_equal(arrays[m], reference[m]) for m in arrays)
    assert verify_cache(cache).ok


@pytest.mark.slow
def test_verify_finds_a_changed_byte_that_opening_cannot_see(
    crema_raw: Path, crema_cache: Path, tmp_path: Path, small: dict
) -> None:
    cache = Path(shutil.copytree(crema_cache, tmp_path / "cache"))
    done = _qkf("data", "info", str(cache), "--verify")
    recorded = _index(cache)["checksums"]["cache"]
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert f"cache checksum sha256:{recorded}\n" in done.stdout
    assert done.stdout.endswith(
        "verified: every byte of 36 clips in 2 array file(s) and the index matches the checksums recorded "
        f"by prepare (cache checksum sha256:{recorded})\n"
    )

    index = CacheIndex.load(cache)
    path = cache / index.arrays["video"]
    shape, _, dtype, offset = read_npy_header(path)
    row = 20
    data = bytearray(path.read_bytes())
    data[offset + row * (len(data) - offset) // shape[0] + 7] ^= 0x01  # one bit inside row 20
    path.write_bytes(bytes(data))
    clip = index.clips[row]["id"]

    # Opening checks structure only: the cache looks fine; reading every byte finds the change.
    opened, done = _qkf_together(["data", "info", str(cache)], ["data", "info", str(cache), "--verify"])
    assert opened.returncode == 0 and opened.stderr == ""
    assert done.returncode == 1  # a failed check
    rows = f"{path.name}: 1 of 36 rows differ from their checksums (clips {clip})"
    assert _one_line_errors(done) == [f"error: cache {cache}: {rows}; {REPAIR}"]

    report = prepare("crema", crema_raw, cache, clip_seconds=CLIP_SECONDS, **small)
    assert (report.decoded, report.reused) == (1, 35)  # only the damaged clip is decoded again
    assert report.notes[-1] == f"1 damaged row(s) in the cache in {cache} decoded again"
    assert np.array_equal(_contents(cache)[1]["video"], _contents(crema_cache)[1]["video"])
    assert verify_cache(cache).ok and _index(cache)["checksums"]["cache"] == recorded


def test_a_cache_without_checksums_opens_and_prepare_adds_them(
    crema_raw: Path, crema_cache: Path, tmp_path: Path, small: dict
) -> None:
    cache = Path(shutil.copytree(crema_cache, tmp_path / "cache"))
    data = _index(cache)
    recorded = data.pop("checksums")  # what an older qkf wrote
    _write_index(cache, data)
    assert CacheIndex.load(cache).checksums == {}
    result = verify_cache(cache)
    assert not result.checked and not result.ok

    done = _qkf("data", "info", str(cache), "--verify")
    assert done.returncode == 1
    assert "no checksums (prepared before qkf recorded them;" in done.stdout
    assert _one_line_errors(done) == [
        f"error: cache {cache}: cannot verify: it holds no checksums (prepared before qkf recorded them); "
        "`qkf data prepare` with the same arguments adds them without decoding again"
    ]

    report = prepare("crema", crema_raw, cache, clip_seconds=CLIP_SECONDS, **small)
    assert (report.decoded, report.reused) == (0, 36)
    assert report.notes[-1] == f"the cache in {cache} held no checksums (an older qkf made it): recorded now"
    assert _index(cache)["checksums"] == recorded and verify_cache(cache).ok


def _edit(key: str, value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data[key] = value

    return edit


def _edit_clip(key: str, value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["clips"][0][key] = value

    return edit


INDEX_EDITS = [
    ("label as text", _edit_clip("label", "1"), "has label '1', outside the class list"),
    ("negative label", _edit_clip("label", -1), "has label -1, outside the class list"),
    ("boolean label", _edit_clip("label", True), "has label True, outside the class list"),
    ("unknown split", _edit_clip("split", "dev"), "has split 'dev' (expected train, val, test)"),
    ("repeated id", lambda d: d["clips"][1].update(id=d["clips"][0]["id"]), "1 clip id(s) listed twice"),
    ("array outside the folder", lambda d: d["arrays"].update(audio="../x.npy"), "are not .npy file names"),
    ("missing stats", lambda d: d["stats"].pop("video_std"), "stats video_std is None (expected 3"),
    ("zero std", lambda d: d["stats"].update(audio_std=[0.0]), "stats audio_std is [0.0]"),
    ("unknown field", _edit("extra", 1), "index.json lacks or has unknown field(s) extra"),
    ("missing field", lambda d: d.pop("clips"), "index.json lacks or has unknown field(s) clips"),
    ("no clips", _edit("clips", []), "index.json: lists no clips (an empty cache)"),
    ("bad params", lambda d: d["params"].pop("n_mels"), "params lack positive integer"),
    (
        "relabelled within the class list",
        lambda d: d["clips"][0].update(label=(d["clips"][0]["label"] + 1) % len(d["class_names"])),
        "index.json differs from the checksum recorded when it was written",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [e[1:] for e in INDEX_EDITS], ids=[e[0] for e in INDEX_EDITS])
def test_a_malformed_index_is_one_line(crema_cache: Path, tmp_path: Path, edit, message: str) -> None:
    cache = Path(shutil.copytree(crema_cache, tmp_path / "cache"))
    data = _index(cache)
    edit(data)
    _write_index(cache, data)
    with pytest.raises(CacheError) as info:
        CacheIndex.load(cache)
    text = str(info.value)
    assert "\n" not in text and message in text and text.startswith(f"cache {cache}: "), text


def _rewrite_header(path: Path, dtype: np.dtype | None = None, fortran: bool = False, extra: int = 0) -> None:
    array = np.load(path, mmap_mode="r")
    header = {"descr": np.lib.format.dtype_to_descr(dtype or array.dtype), "fortran_order": fortran,
              "shape": array.shape}  # fmt: skip
    offset = len(path.read_bytes()) - array.nbytes
    data = path.read_bytes()[offset:]
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(data + b"\x00" * extra)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(dtype=np.dtype(np.int16)), "holds <i2 values, expected <f2 (float16)"),
        (dict(fortran=True), "is in Fortran order, expected C order"),
        (dict(extra=16), "has 16 bytes beyond the array its header declares"),
    ],
)
def test_a_changed_header_is_one_line(crema_cache: Path, tmp_path: Path, change: dict, message: str) -> None:
    cache = Path(shutil.copytree(crema_cache, tmp_path / "cache"))
    path = _array(cache, "audio")
    _rewrite_header(path, **change)
    with pytest.raises(CacheError) as info:
        CacheIndex.load(cache)
    assert str(info.value) == f"cache {cache}: {path.name} {message}; {REPAIR}"
