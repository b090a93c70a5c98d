"""``prepare``: decode every clip of a raw dataset once into a memory-mappable cache.

Steps: scan the raw layout -> assign splits -> decode the clips not done yet (parallel, one part file
per clip, so a killed run resumes) -> assemble the arrays and the index -> report. See cache.py for
the format and parts.py for what makes a clip "done".
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

from qkf_snn.datasets.cache import INDEX_FILE, PARTS_DIR, REPORT_FILE, CacheError, CacheIndex
from qkf_snn.datasets.classes import ordered_present
from qkf_snn.datasets.features import MODALITIES, FeatureParams, max_n_mels, mel_bands_fit
from qkf_snn.datasets.finalize import Row, generation, write_arrays
from qkf_snn.datasets.integrity import seal, verify
from qkf_snn.datasets.parts import fingerprint, part_path, read_skip
from qkf_snn.datasets.progress import ProgressCallback, progress_bar
from qkf_snn.datasets.records import ClipRecord, SkippedClip, rel_path
from qkf_snn.datasets.registry import DATASETS, DatasetSpec, get_spec
from qkf_snn.datasets.report import PrepareReport
from qkf_snn.datasets.workers import run_clips
from qkf_snn.errors import UserError
from qkf_snn.io import LOCK_FILE, FolderLock, check_destination, remove_stale_temps, writing


def prepare(
    dataset: str,
    raw: Path | None,
    out: Path,
    *,
    workers: int = 1,
    time_steps: int = 4,
    image_size: int = 64,
    n_mels: int = 64,
    audio_width: int = 64,
    sample_rate: int = 16000,
    clip_seconds: float | None = None,
    modalities: tuple[str, ...] = MODALITIES,
    split: str | None = None,
    split_seed: int = 0,
    event_crop: bool = False,
    manifest: Path | None = None,
    progress: bool | ProgressCallback = True,
) -> PrepareReport:
    """Decode ``dataset`` found under ``raw`` into a cache in ``out``; returns (and saves) the report.

    ``clip_seconds`` defaults to the dataset's usual span (``DATASETS[dataset].clip_seconds``).
    ``split`` is a split name (see ``DATASETS[dataset].splits``) or, for CREMA-D, a folder with
    ``train.csv``/``test.csv``. ``manifest`` (``folder`` only) is a CSV of clips; ``raw`` then defaults
    to its folder. Rerunning is cheap: finished clips are reused, not decoded again.
    Raises UserError for a wrong root or layout, and when no clip at all is usable.
    """
    started = time.perf_counter()
    spec = get_spec(dataset)
    if raw is None and manifest is None:
        raise UserError(f"--raw: missing (the raw dataset root: {spec.layout})")
    raw, out = Path(raw if raw is not None else Path(manifest).parent), Path(out)  # type: ignore[arg-type]
    params = _params(spec, time_steps, image_size, n_mels, audio_width, sample_rate, clip_seconds, modalities)
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    for option, value in (("event_crop", event_crop), ("manifest", manifest)):
        if value and option not in spec.options:
            owners = " and ".join(name for name, s in DATASETS.items() if option in s.options)
            raise UserError(f"--{option.replace('_', '-')} applies to {owners} only, not {dataset}")
    if manifest is not None and not Path(manifest).is_file():
        raise UserError(f"--manifest {manifest}: no such file")
    if not raw.is_dir():
        raise UserError(f"--raw {raw}: no such directory (expected {spec.layout})")
    _check_out(out)

    # Readers require only the modalities asked for (an audio-only root, frames without audio).
    options = {"event_crop": event_crop, "manifest": manifest, "modalities": params.modalities}
    # One writer per cache folder; taken after the read-only checks and scan, so that a refused
    # prepare creates nothing.
    lock = FolderLock(out, "--out", "wait for that prepare to end, or choose another --out")
    try:
        with writing(out):
            return _prepare(
                dataset,
                spec,
                raw,
                out,
                params,
                lock,
                started,
                workers,
                split,
                split_seed,
                options,
                progress,
            )
    finally:
        lock.release()


def _prepare(
    dataset: str,
    spec: DatasetSpec,
    raw: Path,
    out: Path,
    params: FeatureParams,
    lock: FolderLock,
    started: float,
    workers: int,
    split: str | None,
    split_seed: int,
    options: dict,
    progress: bool | ProgressCallback,
) -> PrepareReport:
    scan = spec.scan(raw, options)
    records, skipped = _unique(scan.records, list(scan.skipped), raw)
    split_name, assignment = spec.assign(records, split, split_seed)
    kept: list[tuple[ClipRecord, str]] = []
    for i, (record, side) in enumerate(zip(records, assignment.splits, strict=True)):
        if side is None:
            skipped.append(SkippedClip(record.clip_id, rel_path(record.path, raw), assignment.reasons[i]))
        else:
            kept.append((record, side))

    lock.acquire()
    parts = out / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    remove_stale_temps(parts)
    previous, previous_note = _previous(out, params)
    # Read every byte of the cache already there: rows that no longer match their checksums are
    # decoded again, the rest reused (an intact cache costs one read).
    check = verify(out, previous) if previous is not None else None
    if check is not None and check.bad_rows:
        previous_note = f"{len(check.bad_rows)} damaged row(s) in the cache in {out} decoded again"
    elif check is not None and not check.checked:
        previous_note = f"the cache in {out} held no checksums (an older qkf made it): recorded now"
    done_before = _reusable(previous, check.bad_rows if check else set())
    fps = [fingerprint(record, params, raw) for record, _ in kept]
    todo = [
        (record, fp)
        for (record, _), fp in zip(kept, fps, strict=True)
        if fp not in done_before and not part_path(parts, fp).is_file() and read_skip(parts, fp) is None
    ]
    with progress_bar(progress, len(kept), f"prepare {dataset}") as advance:
        advance(len(kept) - len(todo))
        for _ in run_clips(todo, params, parts, workers):
            advance(1)

    rows, decode_skips = _collect(kept, fps, parts, done_before, raw)
    skipped.extend(SkippedClip(record.clip_id, path, reason) for record, _, reason, path in decode_skips)
    class_names = ordered_present({r.record.label for r in rows}, spec.classes)
    for row in rows:
        row.label = class_names.index(row.record.label)
    report = PrepareReport(
        dataset=dataset,
        raw=str(raw),
        out=str(out),
        split=split_name,
        found=scan.found,
        prepared=len(rows),
        skipped=len(skipped),
        decoded=len(todo),
        reused=len(kept) - len(todo),
        splits=dict(Counter(r.split for r in rows)),
        skipped_clips=skipped,
        notes=[*scan.notes, *assignment.notes, *([previous_note] if previous_note else [])],
        workers=workers,
    )
    if not rows:
        report.seconds = time.perf_counter() - started
        report.save(out / REPORT_FILE)
        raise UserError(
            f"--raw {raw}: no usable clip ({report.found} found, all skipped; reasons in {out / REPORT_FILE})"
        )
    gen = generation(params, rows)
    if previous is not None and previous.generation == gen and check is not None and check.ok:
        # Same clips, same settings, every byte intact: nothing to rewrite.
        names, stats, reuse = previous.arrays, previous.stats, previous.checksums
    else:  # also a cache made before checksums: its rows are copied and the checksums recorded
        names, stats = write_arrays(out, rows, params, gen, parts, previous)
        reuse = None
    index = _index(dataset, split_name, params, class_names, rows, names, stats, decode_skips, gen)
    index.checksums = seal(out, index, reuse)
    index.save(out)
    _cleanup(out, parts, names)
    report.seconds = time.perf_counter() - started
    report.save(out / REPORT_FILE)
    return report


def _index(
    dataset: str,
    split_name: str,
    params: FeatureParams,
    class_names: list[str],
    rows: list[Row],
    names: dict[str, str],
    stats: dict[str, list[float]],
    decode_skips: list[tuple[ClipRecord, str, str, str]],
    gen: str,
) -> CacheIndex:
    clips = [
        {
            "id": r.record.clip_id,
            "label": r.label,
            "split": r.split,
            "group": r.record.group,
            "fingerprint": r.fingerprint,
            "seconds": round(r.seconds, 4),
        }
        for r in rows
    ]
    # Decode failures are kept with their fingerprint so that a rerun does not retry unchanged files.
    failures = [
        {"clip_id": rec.clip_id, "reason": why, "path": path, "fingerprint": fp}
        for rec, fp, why, path in decode_skips
    ]
    return CacheIndex(
        dataset=dataset,
        split_name=split_name,
        params=params.to_dict(),
        class_names=class_names,
        modalities=list(params.modalities),
        clips=clips,
        arrays=names,
        stats=stats,
        skipped=failures,
        generation=gen,
    )


def _params(
    spec: DatasetSpec,
    time_steps: int,
    image_size: int,
    n_mels: int,
    audio_width: int,
    sample_rate: int,
    clip_seconds: float | None,
    modalities: tuple[str, ...],
) -> FeatureParams:
    for name, value in (
        ("--time-steps", time_steps),
        ("--image-size", image_size),
        ("--n-mels", n_mels),
        ("--audio-width", audio_width),
        ("--sample-rate", sample_rate),
    ):
        if value < 1:
            raise UserError(f"{name} {value}: must be a positive integer")
    seconds = spec.clip_seconds if clip_seconds is None else float(clip_seconds)
    if seconds <= 0:
        raise UserError(f"--clip-seconds {clip_seconds}: must be positive")
    mods = tuple(m for m in MODALITIES if m in modalities)
    unknown = set(modalities) - set(MODALITIES)
    if unknown or not mods:
        raise UserError(f"--modalities {','.join(modalities)}: choose audio, video or both")
    params = FeatureParams(time_steps, sample_rate, n_mels, audio_width, image_size, seconds, mods)
    if "audio" in mods:
        # n_fft follows from the span per log-mel column: --clip-seconds / (--time-steps x --audio-width)
        if not mel_bands_fit(sample_rate, params.n_fft, n_mels):
            bound = max_n_mels(sample_rate, params.n_fft)
            raise UserError(
                f"--n-mels {n_mels}: at most {bound} at {sample_rate} Hz with an FFT of {params.n_fft} "
                f"samples ({params.n_fft // 2 + 1} frequency bins); more mel bands than that leave some "
                "filters without any FFT bin (all-zero bands)"
            )
    return params


def _check_out(out: Path) -> None:
    """Refuse to write into a non-empty folder that is not a cache (we delete our own stale files)."""
    check_destination(out, "--out", "dir")
    if out.is_dir() and any(out.iterdir()):
        ours = any((out / name).exists() for name in (INDEX_FILE, PARTS_DIR, REPORT_FILE, LOCK_FILE))
        if not ours:
            raise UserError(f"--out {out}: not empty and not a qkf cache (choose a new or empty folder)")


def _unique(
    records: list[ClipRecord], skipped: list[SkippedClip], raw: Path
) -> tuple[list[ClipRecord], list[SkippedClip]]:
    """Clip ids key the cache: a repeated id (same name in two folders) keeps its first record."""
    seen: dict[str, ClipRecord] = {}
    out = []
    for record in records:
        if record.clip_id in seen:
            reason = f"duplicate clip name (also {rel_path(seen[record.clip_id].path, raw)})"
            skipped.append(SkippedClip(record.clip_id, rel_path(record.path, raw), reason))
        else:
            seen[record.clip_id] = record
            out.append(record)
    return out, skipped


def _previous(out: Path, params: FeatureParams) -> tuple[CacheIndex | None, str]:
    """The cache already in ``out``, if it was made with the same settings (its rows can be reused),
    and a note for the report when one is there but damaged (then every clip is decoded again)."""
    if not (out / INDEX_FILE).is_file():
        return None, ""
    try:
        index = CacheIndex.load(out)
    except CacheError as err:
        return None, f"the cache in {out} was damaged ({err.problems[0]}): every clip decoded again"
    except UserError:
        return None, ""
    return (index if index.params == params.to_dict() else None), ""


def _reusable(
    previous: CacheIndex | None, damaged: set[int]
) -> dict[str, tuple[int | None, tuple[str, str] | None, float]]:
    """fingerprint -> (row in the previous cache, or None and its (skip reason, file)), seconds).
    Rows in ``damaged`` are left out: their clips are decoded again."""
    if previous is None:
        return {}
    done: dict[str, tuple[int | None, tuple[str, str] | None, float]] = {}
    for i, clip in enumerate(previous.clips):
        if i not in damaged:
            done[clip["fingerprint"]] = (i, None, float(clip.get("seconds", 0.0)))
    for skip in previous.skipped:
        done[skip["fingerprint"]] = (None, (skip["reason"], skip["path"]), 0.0)
    return done


def _collect(
    kept: list[tuple[ClipRecord, str]],
    fps: list[str],
    parts: Path,
    done_before: dict[str, tuple[int | None, tuple[str, str] | None, float]],
    raw: Path,
) -> tuple[list[Row], list[tuple[ClipRecord, str, str, str]]]:
    """Prepared rows and (record, fingerprint, reason, file) of clips that could not be decoded."""
    rows, skips = [], []
    for (record, side), fp in zip(kept, fps, strict=True):
        prev_row, skip, seconds = done_before.get(fp, (None, None, 0.0))
        if prev_row is not None:  # in the existing cache: copy its row
            rows.append(Row(record, side, -1, fp, previous_row=prev_row, seconds=seconds))
        elif part_path(parts, fp).is_file():  # decoded by this run or an interrupted one
            rows.append(Row(record, side, -1, fp))
        else:
            reason, path = skip or read_skip(parts, fp) or ("no result (interrupted?)", str(record.path))
            skips.append((record, fp, reason, rel_path(Path(path), raw)))
    return rows, skips


def _cleanup(out: Path, parts: Path, keep: dict[str, str]) -> None:
    """Drop the parts and array files of older generations, now that the index names the new ones."""
    shutil.rmtree(parts, ignore_errors=True)
    for pattern in ("audio-*.npy", "video-*.npy"):
        for path in out.glob(pattern):
            if path.name not in keep.values():
                path.unlink(missing_ok=True)
