"""Bring-your-own data (``folder``): ImageFolder-style layouts or a manifest CSV, and their splits.

Layouts under the raw root (one per dataset; class names are the folder names):

- videos with sound: ``<class>/<clip>.<mp4|mkv|avi|flv|webm|mov>`` (audio from the container's track);
- paired files: ``audio/<class>/<clip>.<wav|flac|mp3|ogg>`` with ``video/<class>/<clip>.<video>``,
  ``image/<class>/<clip>.<jpg|jpeg|png>`` or ``frames/<class>/<clip>/*.<jpg|jpeg|png>``; a side may be
  absent when only the other modality is prepared;
- a manifest (``--manifest FILE``): a CSV with a ``label`` column, ``video`` and/or ``audio`` and/or
  ``image`` paths (relative to the manifest's folder, or to ``--raw`` when given), and optional
  ``split``, ``group``, ``start`` and ``end`` (seconds) columns. A ``video`` cell may name a folder of
  frames.

Clip ids are ``<class>/<clip>`` (the same clip name may occur in two classes), or the manifest path
without its suffix (plus ``@start-end`` when a span is given).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from qkf_snn.datasets.records import SPLITS, ClipRecord, ScanResult, SkippedClip, VideoKind, rel_path
from qkf_snn.datasets.splits import (
    DEFAULT_TEST,
    DEFAULT_VAL,
    Assignment,
    carve_val,
    stratified_group_split,
    stratified_split,
)
from qkf_snn.errors import UserError

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".flv", ".webm", ".mov")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
# Paired layout: folder -> (accepted suffixes, how its clips are decoded); "frames" holds clip folders.
VISUAL_DIRS: dict[str, tuple[tuple[str, ...], VideoKind]] = {
    "video": (VIDEO_SUFFIXES, "container"),
    "image": (IMAGE_SUFFIXES, "image"),
    "frames": (IMAGE_SUFFIXES, "frames"),
}
MEDIA_COLUMNS: tuple[str, ...] = ("video", "audio", "image")
LAYOUT = (
    "<class>/<clip>.mp4 (videos with sound), or audio/<class>/<clip>.wav with video/, image/ or "
    "frames/<class>/<clip>/, or --manifest FILE"
)


def _ext_list(suffixes: Iterable[str]) -> str:
    return ", ".join(suffixes)


def _visible(folder: Path) -> list[Path]:
    """Entries of ``folder`` without hidden ones (.DS_Store, ._files, .ipynb_checkpoints), sorted."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _natural(path: Path) -> list[object]:
    # frame_2.jpg before frame_10.jpg: frame folders are often numbered without zero padding.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> tuple[Path, ...]:
    """The images of a frame folder in natural order."""
    return tuple(sorted((p for p in _visible(folder) if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural))


def scan(raw: Path, options: dict) -> ScanResult:
    """Every clip of a ``folder`` dataset; ``options``: ``modalities`` to prepare, ``manifest`` path."""
    modalities = tuple(options.get("modalities", ("audio", "video")))
    manifest = options.get("manifest")
    if manifest is not None:
        return scan_manifest(Path(manifest), raw, modalities)
    if any(_is_side(raw / d) for d in ("audio", *VISUAL_DIRS)):
        return _scan_paired(raw, modalities)
    return _scan_videos(raw)


def _is_side(folder: Path) -> bool:
    # audio/<class>/... holds class folders; a class that happens to be called "audio" holds files.
    return folder.is_dir() and any(p.is_dir() for p in _visible(folder))


# --- videos with sound -----------------------------------------------------------------------------


def _class_dirs(root: Path, where: str) -> list[Path]:
    dirs = [p for p in _visible(root) if p.is_dir()]
    if not dirs:
        raise UserError(f"{where}: no class folders (expected {LAYOUT})")
    return dirs


def _scan_videos(raw: Path) -> ScanResult:
    result = ScanResult()
    for folder in _class_dirs(raw, f"--raw {raw}"):
        entries = _visible(folder)
        videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
        if not videos:
            raise UserError(
                f"--raw {raw}: class folder {folder.name}/ holds no video ({_ext_list(VIDEO_SUFFIXES)}); "
                "remove it, or use the paired layout (audio/, video/, image/ or frames/)"
            )
        seen: dict[str, Path] = {}
        for path in entries:
            clip, rel = f"{folder.name}/{path.stem}", rel_path(path, raw)
            if path not in videos:
                what = "a folder" if path.is_dir() else f"file type '{path.suffix or path.name}'"
                reason = f"unsupported {what} (expected {_ext_list(VIDEO_SUFFIXES)})"
                result.skipped.append(SkippedClip(clip, rel, reason))
            elif path.stem in seen:
                reason = f"duplicate clip name (also {rel_path(seen[path.stem], raw)})"
                result.skipped.append(SkippedClip(clip, rel, reason))
            else:
                seen[path.stem] = path
                result.records.append(ClipRecord(clip, folder.name, path, (path,), "container", group=clip))
    return result


# --- paired files ----------------------------------------------------------------------------------

Side = dict[tuple[str, str], tuple[Path, ...]]  # (class, clip) -> file(s)


def _scan_paired(raw: Path, modalities: tuple[str, ...]) -> ScanResult:
    visual = [d for d in VISUAL_DIRS if _is_side(raw / d)]
    if len(visual) > 1:
        raise UserError(
            f"--raw {raw}: holds {' and '.join(d + '/' for d in visual)}; give one kind of pictures "
            "(video/, image/ or frames/) per dataset"
        )
    has_audio = _is_side(raw / "audio")
    if "audio" in modalities and not has_audio:
        raise UserError(
            f"--raw {raw}: no audio/ folder (only {visual[0]}/); prepare it with --modalities video"
        )
    if "video" in modalities and not visual:
        raise UserError(
            f"--raw {raw}: no video/, image/ or frames/ folder (only audio/); "
            "prepare it with --modalities audio"
        )
    result = ScanResult()
    # A modality that is not prepared is never required: its folder is not even read.
    sides: list[tuple[str, Side]] = []
    if "audio" in modalities:
        sides.append(("audio", _read_side(raw, "audio", AUDIO_SUFFIXES, result)))
    if "video" in modalities:
        sides.append((visual[0], _read_side(raw, visual[0], VISUAL_DIRS[visual[0]][0], result)))
    kind: VideoKind = VISUAL_DIRS[visual[0]][1] if visual and "video" in modalities else "container"
    if len(sides) == 1:
        name, files = sides[0]
        for (label, stem), paths in sorted(files.items()):
            audio, video = (paths[0], ()) if name == "audio" else (paths[0], paths)
            result.records.append(ClipRecord(f"{label}/{stem}", label, audio, video, kind, f"{label}/{stem}"))
        return result
    (_, audio_side), (vis_name, vis_side) = sides
    by_stem: dict[str, dict[str, list[str]]] = {"audio": defaultdict(list), vis_name: defaultdict(list)}
    for name, files in sides:
        for label, stem in files:
            by_stem[name][stem].append(label)
    done: set[tuple[str, str]] = set()
    for key in sorted(audio_side.keys() | vis_side.keys()):
        if key in done:
            continue
        label, stem = key
        clip = f"{label}/{stem}"
        if key in audio_side and key in vis_side:
            rec = ClipRecord(clip, label, audio_side[key][0], vis_side[key], kind, group=clip)
            result.records.append(rec)
            continue
        have, other = ("audio", vis_name) if key in audio_side else (vis_name, "audio")
        have_side = audio_side if have == "audio" else vis_side
        path = have_side[key][0]
        # The same clip name unpaired in another class of the other side: one clip with two labels.
        elsewhere = [c for c in by_stem[other][stem] if (c, stem) not in have_side and (c, stem) not in done]
        if elsewhere:
            done.add((elsewhere[0], stem))
            reason = f"wrong label: {have}/{label}/ but {other}/{elsewhere[0]}/ for the same clip name"
        else:
            reason = f"missing partner file: no {other}/{label}/{stem}.* beside {have}/{label}/{path.name}"
        result.skipped.append(SkippedClip(clip, rel_path(path, raw), reason))
    return result


def _read_side(raw: Path, name: str, suffixes: tuple[str, ...], result: ScanResult) -> Side:
    """(class, clip) -> files of one side folder; unusable entries go to ``result.skipped``."""
    side: Side = {}
    frames = name == "frames"
    for folder in _class_dirs(raw / name, f"--raw {raw}: {name}/"):
        found = 0
        for entry in _visible(folder):
            key, clip, rel = (folder.name, entry.stem), f"{folder.name}/{entry.stem}", rel_path(entry, raw)
            if frames:
                key, clip = (folder.name, entry.name), f"{folder.name}/{entry.name}"
                files = frame_files(entry) if entry.is_dir() else ()
                if not entry.is_dir():
                    reason = f"not a clip folder (expected {name}/<class>/<clip>/*.jpg)"
                elif not files:
                    reason = f"no frames ({_ext_list(IMAGE_SUFFIXES)}) in the folder"
                else:
                    reason = ""
            else:
                files = (entry,)
                ok = entry.is_file() and entry.suffix.lower() in suffixes
                reason = "" if ok else f"unsupported file type '{entry.suffix or entry.name}' in {name}/"
            if reason:
                result.skipped.append(SkippedClip(clip, rel, reason))
            elif key in side:
                reason = f"duplicate clip name (also {rel_path(side[key][0], raw)})"
                result.skipped.append(SkippedClip(clip, rel, reason))
            else:
                side[key] = files
                found += 1
        if not found:
            what = "clip folders of frames" if frames else _ext_list(suffixes)
            raise UserError(f"--raw {raw}: class folder {name}/{folder.name}/ is empty (no {what})")
    return side


# --- manifest --------------------------------------------------------------------------------------


def scan_manifest(manifest: Path, raw: Path | None, modalities: tuple[str, ...]) -> ScanResult:
    """One record per data row of a manifest CSV; paths are relative to ``raw`` (default: its folder)."""
    base = Path(raw) if raw is not None else manifest.parent
    rows, columns = _read_manifest(manifest)
    media = [c for c in MEDIA_COLUMNS if c in columns]
    where = f"--manifest {manifest}"
    if "label" not in columns:
        raise UserError(f"{where}: no 'label' column (columns: {', '.join(columns) or 'none'})")
    if not media:
        raise UserError(f"{where}: no video, audio or image column (columns: {', '.join(columns)})")
    if "audio" in modalities and not {"audio", "video"} & set(media):
        raise UserError(f"{where}: no audio or video column; prepare it with --modalities video")
    if "video" in modalities and not {"video", "image"} & set(media):
        raise UserError(f"{where}: no video or image column; prepare it with --modalities audio")
    if not rows:
        raise UserError(f"{where}: no data rows")
    result = ScanResult()
    missing_files = 0
    for lineno, row in rows:
        clip, reason, record = _manifest_row(row, base, modalities, f"{manifest.name}:{lineno}")
        if record is not None:
            result.records.append(record)
        else:
            missing_files += reason.startswith("missing file")
            result.skipped.append(SkippedClip(clip, f"{manifest.name}:{lineno}", reason))
    if missing_files == len(rows):
        # Not one file where the manifest says: the paths are relative to another folder.
        first = next(r for _, r in rows for c in media if r.get(c))
        example = next(first[c] for c in media if first.get(c))
        raise UserError(f"{where}: none of its files exist (paths are relative to {base}; e.g. {example})")
    return result


def _read_manifest(path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    if not path.is_file():
        raise UserError(f"--manifest {path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            columns = [h.strip().lower() for h in header]
            rows = [
                (lineno, {c: v.strip() for c, v in zip(columns, values, strict=False)})
                for lineno, values in enumerate(reader, start=2)
                if any(v.strip() for v in values)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"--manifest {path}: not a readable UTF-8 CSV ({err})") from err
    return rows, columns


def _manifest_row(
    row: dict[str, str], base: Path, modalities: tuple[str, ...], where: str
) -> tuple[str, str, ClipRecord | None]:
    """(clip id, skip reason, record or None) of one manifest row."""
    cells = {c: row.get(c, "") for c in MEDIA_COLUMNS}
    primary = next((cells[c] for c in MEDIA_COLUMNS if cells[c]), "")
    clip = str(Path(primary).with_suffix("")) if primary else where
    try:
        start = float(row["start"]) if row.get("start") else 0.0
        end = float(row["end"]) if row.get("end") else None
    except ValueError:
        return clip, f"start/end '{row.get('start', '')}'/'{row.get('end', '')}' are not numbers", None
    if row.get("start") or row.get("end"):
        clip += f"@{start:g}-{'' if end is None else f'{end:g}'}"
    if start < 0 or (end is not None and end <= start):
        return clip, f"empty span {start:g}-{end:g} s", None
    label = row.get("label", "")
    if not label:
        return clip, "wrong label: the label cell is empty", None
    split = row.get("split", "").lower() or None
    if "split" in row and split not in SPLITS:
        given = f"unknown split '{row['split']}'" if split else "empty split cell"
        return clip, f"{given} (expected {', '.join(SPLITS)})", None
    paths = {c: _resolve(cells[c], base) for c in MEDIA_COLUMNS if cells[c]}
    visual_col = "video" if "video" in paths else "image" if "image" in paths else None
    audio_col = "audio" if "audio" in paths else "video" if "video" in paths else None
    needed = [c for m, c in (("audio", audio_col), ("video", visual_col)) if m in modalities]
    if None in needed:
        lacking = "audio" if "audio" in modalities and audio_col is None else "video"
        return clip, f"missing partner file: no {lacking} path in this row", None
    for c in needed:
        if not paths[c].exists():
            return clip, f"missing file {cells[c]}", None
    if visual_col is not None and "video" in modalities:
        visual = paths[visual_col]
        if visual.is_dir():
            frames, kind = frame_files(visual), "frames"
            if not frames:
                return clip, f"no frames ({_ext_list(IMAGE_SUFFIXES)}) in {cells[visual_col]}", None
        else:
            frames, kind = (visual,), "container" if visual_col == "video" else "image"
    else:
        frames, kind = (), "container"
    audio = paths[audio_col] if audio_col is not None and "audio" in modalities else frames[0]
    group = row.get("group") or clip
    record = ClipRecord(clip, label, audio, frames, kind, group, start, end, split)
    return clip, "", record


def _resolve(cell: str, base: Path) -> Path:
    path = Path(cell)
    return path if path.is_absolute() else base / path


# --- splits ----------------------------------------------------------------------------------------


def split_stratified(records: list[ClipRecord], seed: int) -> Assignment:
    keys, labels = [r.clip_id for r in records], [r.label for r in records]
    sides = stratified_split(keys, labels, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed)
    return _noted(Assignment(list(sides)), records)


def split_group(records: list[ClipRecord], seed: int) -> Assignment:
    groups, labels = [r.group for r in records], [r.label for r in records]
    sides = stratified_group_split(groups, labels, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed)
    return _noted(Assignment(list(sides)), records)


def split_manifest(records: list[ClipRecord], seed: int) -> Assignment:
    """The manifest's ``split`` column; a side it lacks is a stratified share carved from train."""
    if any(r.split is None for r in records):
        raise UserError("split 'manifest' needs a manifest with a split column (--manifest FILE)")
    splits: list[str] = [r.split or "train" for r in records]
    notes = []
    keys, labels = [r.clip_id for r in records], [r.label for r in records]
    for side, share in (("test", DEFAULT_TEST), ("val", DEFAULT_VAL)):
        if side not in splits:
            carved = carve_val(keys, labels, splits, val=share, seed=seed)
            splits = [side if c == "val" and s == "train" else s for s, c in zip(splits, carved, strict=True)]
            notes.append(f"no {side} rows in the manifest: {side} is a stratified {share:.0%} of train")
    return _noted(Assignment(list(splits), notes=notes), records)


def _noted(assignment: Assignment, records: list[ClipRecord]) -> Assignment:
    """Say which classes are missing from val or test (too few clips or groups to spare one)."""
    sides: dict[str, set[str]] = defaultdict(set)
    for r, s in zip(records, assignment.splits, strict=True):
        if s is not None:
            sides[r.label].add(s)
    for label in sorted(sides):
        lacking = [s for s in ("val", "test") if s not in sides[label]]
        if lacking:
            n = sum(r.label == label for r in records)
            clips = f"{n} clip{'s' if n != 1 else ''}"
            assignment.notes.append(f"class '{label}' ({clips}) has no {' or '.join(lacking)} clip")
    return assignment


def default_split(records: list[ClipRecord]) -> str:
    """The manifest's split when it has one, group-aware when groups are known, else stratified."""
    if records and all(r.split is not None for r in records):
        return "manifest"
    return "group" if any(r.group != r.clip_id for r in records) else "stratified"
