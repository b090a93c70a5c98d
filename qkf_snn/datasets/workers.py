"""Run ``decode_clip`` over many records, in this process or a pool, writing one part file per clip."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from qkf_snn.datasets.clip import decode_clip
from qkf_snn.datasets.features import FeatureParams
from qkf_snn.datasets.media import MediaError
from qkf_snn.datasets.parts import write_part, write_skip
from qkf_snn.datasets.records import ClipRecord


def process_one(record: ClipRecord, fp: str, params: FeatureParams, parts: Path) -> tuple[str, str | None]:
    """Decode one clip and store its part (or its skip reason); returns (fingerprint, reason or None)."""
    path = record.path
    try:
        arrays = decode_clip(record, params)
    except MediaError as err:
        reason, path = str(err), err.path or path
    except Exception as err:  # one odd file must not stop a run over thousands of clips
        reason = f"unexpected decoding error ({type(err).__name__}: {' '.join(str(err).split())})"
    else:
        write_part(parts, fp, arrays)
        return fp, None
    write_skip(parts, fp, reason, str(path))
    return fp, reason


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: intra-op threads would only oversubscribe


def _context() -> mp.context.BaseContext:
    # fork where available: like DataLoader workers, and unlike spawn/forkserver it does not re-run the
    # caller's __main__ (a script without a main guard would synthesise or prepare again in each worker).
    # The workers set one intra-op thread before touching torch, which keeps the fork safe.
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def run_clips(
    jobs: list[tuple[ClipRecord, str]], params: FeatureParams, parts: Path, workers: int
) -> Iterator[tuple[str, str | None]]:
    """Yield (fingerprint, reason or None) for each job as it finishes."""
    if workers <= 1 or len(jobs) <= 1:
        import torch

        # Per-clip tensors are tiny: intra-op threads only add synchronisation (30x slower on a busy
        # 2-core machine). Restore the caller's setting afterwards.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for record, fp in jobs:
                yield process_one(record, fp, params, parts)
        finally:
            torch.set_num_threads(threads)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker) as pool:
        futures = [pool.submit(process_one, record, fp, params, parts) for record, fp in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            # Interrupted: finished parts stay on disk for the next run; drop what has not started.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
