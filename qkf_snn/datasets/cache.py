"""The decode-once cache on disk.

    <out>/index.json          what is cached: settings, classes, one entry per clip, array files, stats
    <out>/audio-<gen>.npy     float16 [N, T, 1, F, W] log-mel in dB (memory-mappable .npy)
    <out>/video-<gen>.npy     uint8   [N, T, 3, S, S] RGB frames
    <out>/report.json         the last prepare report (found / prepared / skipped, with reasons)
    <out>/parts/              per-clip results of a prepare in progress (removed when it completes)

``index.json`` is written last and atomically, so it only ever names complete array files; ``<gen>`` is
a hash of the settings and clip list, so a rerun that changes nothing rewrites nothing.

Row i of every array is clip i of the index. Opening a cache checks, without reading array data, that
the index is well formed (labels inside the class list, known splits, unique ids), that its checksum
matches, and that each array's header, dtype, shape, row count and file size agree with the index.
``checksums`` (recorded by prepare) also holds a sha256 per array file and a crc32 per row, which
``qkf data info --verify`` and a rerun of prepare compare against the bytes (see integrity.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from qkf_snn.datasets.records import SPLITS
from qkf_snn.errors import UserError, first_line
from qkf_snn.io import atomic_write_json

INDEX_FILE = "index.json"
REPORT_FILE = "report.json"
PARTS_DIR = "parts"
FORMAT = "qkf-av-cache"
VERSION = 1
ARRAY_DTYPES = {"audio": np.float16, "video": np.uint8}
STATS_WIDTH = {"audio": 1, "video": 3}  # normalisation values per modality: one for audio, one per channel
REPAIR = "`qkf data prepare` with the same arguments repairs it"
SHOWN_PROBLEMS = 10


def array_shape(params: dict, modality: str, n: int) -> tuple[int, ...]:
    """Shape of a modality's array for ``n`` clips under the settings ``params`` (FeatureParams.to_dict())."""
    T, S = int(params["time_steps"]), int(params["image_size"])
    if modality == "audio":
        return (n, T, 1, int(params["n_mels"]), int(params["audio_width"]))
    return (n, T, 3, S, S)


class CacheError(UserError):
    """A damaged or inconsistent cache. ``problems`` holds one line each (the file, what is wrong);
    ``str()`` is the first, with the count of the others, so that it stays one line."""

    def __init__(self, cache_dir: Path, problems: list[str]) -> None:
        self.cache_dir, self.problems = Path(cache_dir), list(problems)
        more = len(self.problems) - 1
        tail = f" ({more} more problem(s): `qkf data info {cache_dir}` lists them)" if more else ""
        super().__init__(self.lines()[0] + tail)

    def lines(self) -> list[str]:
        """One line per problem (at most SHOWN_PROBLEMS, then a count), each saying how to repair it."""
        shown = [f"cache {self.cache_dir}: {p}; {REPAIR}" for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            shown.append(
                f"cache {self.cache_dir}: ... and {len(self.problems) - SHOWN_PROBLEMS} more problems"
            )
        return shown


def read_npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) from a .npy header; ValueError if it is not one."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        return tuple(shape), bool(fortran), np.dtype(dtype), fh.tell()


@dataclass
class CacheIndex:
    """Contents of ``index.json``."""

    dataset: str
    split_name: str  # e.g. "stratified", "speaker", "official", "file:/path/to/splits"
    params: dict  # FeatureParams.to_dict()
    class_names: list[str]
    modalities: list[str]
    clips: list[dict]  # per row: id, label (int), split, group, fingerprint, seconds
    arrays: dict[str, str]  # modality -> file name in the cache folder
    stats: dict[str, list[float]]  # normalisation from the train split: {audio,video}_{mean,std}
    skipped: list[dict] = field(default_factory=list)  # decode failures: clip_id, path, reason, fingerprint
    generation: str = ""
    format: str = FORMAT
    version: int = VERSION

    checksums: dict = field(default_factory=dict)  # see integrity.py; {} in caches made before them

    @classmethod
    def load(cls, cache_dir: Path) -> CacheIndex:
        """Read ``index.json`` and check it against the array files (without reading array data).

        A UserError with one line if the folder is not a cache; a :class:`CacheError` listing every
        problem if it is a damaged one.
        """
        cache_dir = Path(cache_dir)
        path = cache_dir / INDEX_FILE
        if not cache_dir.is_dir():
            raise UserError(f"cache {cache_dir}: no such directory (run `qkf data prepare` first)")
        if not path.is_file():
            raise UserError(
                f"cache {cache_dir}: no {INDEX_FILE} (not a prepared cache; run `qkf data prepare`)"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # ValueError: bad JSON or bytes that are not UTF-8
            raise CacheError(cache_dir, [f"{INDEX_FILE} is unreadable ({first_line(err)})"]) from err
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise UserError(f"cache {path}: not a {FORMAT} v{VERSION} index")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        wrong = sorted(required - set(data)) + sorted(set(data) - known)
        if wrong:
            raise CacheError(cache_dir, [f"{INDEX_FILE} lacks or has unknown field(s) {', '.join(wrong)}"])
        index = cls(**data)
        problems = index.problems(cache_dir)
        if problems:
            raise CacheError(cache_dir, problems)
        return index

    def problems(self, cache_dir: Path) -> list[str]:
        """Everything that disagrees within the index or between it and the array headers."""
        problems = _index_problems(self)
        if problems:
            return problems  # the array checks below rely on a well-formed index
        for m in self.modalities:
            problems.extend(_array_problems(Path(cache_dir), self, m))
        if not problems and self.checksums and self.checksums.get("index") != index_digest(self):
            # Only when nothing more specific was found: an edit that keeps the index consistent.
            problems.append(f"{INDEX_FILE} differs from the checksum recorded when it was written")
        return problems

    def save(self, cache_dir: Path) -> None:
        atomic_write_json(Path(cache_dir) / INDEX_FILE, asdict(self))

    def rows(self, split: str) -> list[int]:
        return [i for i, c in enumerate(self.clips) if c["split"] == split]

    @property
    def time_steps(self) -> int:
        return int(self.params["time_steps"])


def open_array(cache_dir: Path, index: CacheIndex, modality: str) -> np.ndarray:
    """Memory-map one modality's array read-only (cheap: nothing is read until indexed)."""
    return np.load(Path(cache_dir) / index.arrays[modality], mmap_mode="r")


def index_digest(index: CacheIndex) -> str:
    """sha256 of everything in the index but its checksums (key order and whitespace do not matter)."""
    content = {k: v for k, v in asdict(index).items() if k != "checksums"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _index_problems(index: CacheIndex) -> list[str]:
    """Schema and consistency of the index alone: types, labels, splits, ids, arrays, stats."""
    where = INDEX_FILE
    if not isinstance(index.params, dict) or not all(
        isinstance(index.params.get(k), int) and index.params[k] > 0
        for k in ("time_steps", "n_mels", "audio_width", "image_size")
    ):
        return [f"{where}: params lack positive integer time_steps, n_mels, audio_width and image_size"]
    mods = index.modalities
    if not isinstance(mods, list) or not mods or len(set(mods)) != len(mods) or set(mods) - set(ARRAY_DTYPES):
        return [f"{where}: modalities {mods!r} are not a list of audio and/or video"]
    names = index.class_names
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        return [f"{where}: class_names is not a list of names"]
    if len(set(names)) != len(names):
        return [f"{where}: class_names repeats a name"]
    clips = index.clips
    keys = ("id", "label", "split", "fingerprint")
    if not isinstance(clips, list) or not clips:
        return [f"{where}: lists no clips (an empty cache)"]
    malformed = [i for i, c in enumerate(clips) if not isinstance(c, dict) or any(k not in c for k in keys)]
    if malformed:
        return [
            f"{where}: clip entry {malformed[0]} lacks one of {', '.join(keys)} ({len(malformed)} entries)"
        ]
    problems = []
    k = len(names)
    bad = [c for c in clips if type(c["label"]) is not int or not 0 <= c["label"] < k]
    if bad:
        problems.append(
            f"{where}: clip {bad[0]['id']} has label {bad[0]['label']!r}, outside the class list "
            f"({k} classes, labels 0-{k - 1})" + (f"; {len(bad) - 1} more clips too" if len(bad) > 1 else "")
        )
    bad = [c for c in clips if c["split"] not in SPLITS]
    if bad:
        problems.append(
            f"{where}: clip {bad[0]['id']} has split {bad[0]['split']!r} (expected {', '.join(SPLITS)})"
            + (f"; {len(bad) - 1} more clips too" if len(bad) > 1 else "")
        )
    ids = [c["id"] for c in clips]
    if len(set(map(str, ids))) != len(ids):
        problems.append(f"{where}: {len(ids) - len(set(map(str, ids)))} clip id(s) listed twice")
    if not isinstance(index.checksums, dict):
        problems.append(f"{where}: checksums {type(index.checksums).__name__} is not a mapping")
    arrays = index.arrays
    if not isinstance(arrays, dict) or set(arrays) != set(mods):
        problems.append(f"{where}: arrays {arrays!r} do not name one file per modality ({', '.join(mods)})")
    elif any(not isinstance(n, str) or Path(n).name != n or not n.endswith(".npy") for n in arrays.values()):
        problems.append(f"{where}: arrays {arrays!r} are not .npy file names inside the cache folder")
    for m in mods:
        for key in (f"{m}_mean", f"{m}_std"):
            values = index.stats.get(key) if isinstance(index.stats, dict) else None
            ok = isinstance(values, list) and len(values) == STATS_WIDTH[m]
            ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
            if not ok or (key.endswith("_std") and min(values) <= 0):
                problems.append(
                    f"{where}: stats {key} is {values!r} (expected {STATS_WIDTH[m]} finite value(s))"
                )
    return problems


def _array_problems(cache_dir: Path, index: CacheIndex, modality: str) -> list[str]:
    """Header, dtype, layout, rows, shape and size of one array file against the index."""
    name = index.arrays[modality]
    path = cache_dir / name
    if not path.is_file():
        return [f"{name} is missing"]
    try:
        shape, fortran, dtype, offset = read_npy_header(path)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        return [f"{name} is not a readable .npy file ({first_line(err)})"]
    expected = array_shape(index.params, modality, len(index.clips))
    want = np.dtype(ARRAY_DTYPES[modality])
    if dtype != want:
        return [f"{name} holds {dtype.str} values, expected {want.str} ({want.name})"]
    if fortran:
        return [f"{name} is in Fortran order, expected C order"]
    if len(shape) != len(expected) or shape[1:] != expected[1:]:
        return [f"{name} has shape {shape}, expected {expected} from the settings in {INDEX_FILE}"]
    problems = []
    if shape[0] != expected[0]:
        problems.append(
            f"{name} holds {shape[0]} rows but {INDEX_FILE} lists {expected[0]} clips "
            "(rows are matched to clips by position)"
        )
    need, size = offset + math.prod(shape) * dtype.itemsize, path.stat().st_size
    if size < need:
        problems.append(f"{name} is truncated: {size:,} bytes, its header declares {need:,}")
    elif size > need:
        problems.append(f"{name} has {size - need:,} bytes beyond the array its header declares")
    return problems
