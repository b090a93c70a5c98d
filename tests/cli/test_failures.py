"""The failure battery of issue 13, through the installed `qkf` console script in a subprocess.

Every case states the command, its exit status, the ONE line it must print on stderr (no traceback),
a substring naming the culprit, and what must or must not be on disk afterwards. Every command of
`qkf --help` appears at least once (``test_every_command_is_covered``). Cases run two at a time in a
module fixture (each in its own folder), the tests then check their outcomes. A case marked
xfail(strict) is fixed on another branch; its marker goes when that branch is merged.

Full-disk cases mount a 2 MB tmpfs (root only; skipped with the reason otherwise), fill it to leave a
few KB, and let the command run into ENOSPC. The lock tests run two real processes at once.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

QKF = str(Path(sys.executable).with_name("qkf"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
TINY = "--time-steps 2 --image-size 16 --n-mels 16 --audio-width 16 --clip-seconds 1 --no-progress"
TRAIN = (
    "--epochs 1 -b 4 --model qkf_av_tiny_deploy --dims 8 16 16 --num-heads 1 1 1 --workers 0 "
    "--progress none --threads 1 --set run.bn_recalibration=0"
)
FULL_DISK_KB = 2048


# --- shared inputs: one raw set, one cache, one tiny deployable checkpoint (built once) ---------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint
    from qkf_snn.training.config import TrainConfig
    from qkf_snn.training.loop import train

    root = tmp_path_factory.mktemp("failures")
    raw = synthesize("crema", root / "raw", clips=24, seed=0, seconds=1.0)
    kw = dict(time_steps=2, image_size=16, n_mels=16, audio_width=16, clip_seconds=1.0, progress=False)
    prepare("crema", raw, root / "cache", **kw)
    cfg = TrainConfig.from_dict(
        {
            "dataset": "crema",
            "modality": "av",
            "model": {"name": "qkf_av_tiny_deploy", "dims": [8, 16, 16], "heads": [1, 1, 1]},
            "data": {"dir": str(root / "cache"), "batch_size": 4, "workers": 0},
            "optim": {"epochs": 1},
            "run": {"out": str(root / "runs"), "name": "tiny", "progress": "none", "bn_recalibration": 0},
        }
    )
    ckpt = train(cfg).run_dir / "best.pt"
    graph = export_checkpoint(ckpt, root / "tiny.nir").path
    # the same architecture with other weights: its spikes must diverge from the exported graph
    other = torch.load(ckpt, map_location="cpu", weights_only=True)
    gen = torch.Generator().manual_seed(1)
    other["model"] = {
        k: v + torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
        for k, v in other["model"].items()
    }
    torch.save(other, root / "other.pt")
    return {"raw": raw, "cache": root / "cache", "ckpt": ckpt, "graph": graph, "other": root / "other.pt"}


# --- the table -----------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    command: str  # `qkf` arguments; {raw} {cache} {ckpt} {graph} {other} {file} {dir} {full} {box}
    code: int
    culprit: tuple[str, ...]  # substrings of the one stderr line (stdout when ``stream`` says so)
    absent: tuple[str, ...] = ()  # paths (relative to the case's folder) that must not exist after
    present: tuple[str, ...] = ()
    full_disk_free_kb: int | None = None  # mount a 2 MB tmpfs at {full}, leave this much free
    setup: Callable[[Path, dict], None] | None = None
    stream: str = "stderr"
    one_line: bool = True
    lines: int = 1  # error lines: one per problem (a damaged cache can have one per array)
    check: Callable[[Path], None] | None = None  # further checks of what was left on disk
    marks: tuple = ()


def _tamper(how: str) -> Callable[[Path, dict], None]:
    """A copy of the shared cache at {box}/tampered, damaged in one way."""

    def setup(box: Path, world: dict) -> None:
        cache = Path(shutil.copytree(world["cache"], box / "tampered"))
        index = json.loads((cache / "index.json").read_text())
        audio = cache / index["arrays"]["audio"]
        if how == "truncate":
            audio.write_bytes(audio.read_bytes()[:-1000])
        elif how == "header":
            data = bytearray(audio.read_bytes())
            data[10:60] = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"[:50]
            audio.write_bytes(bytes(data))
        elif how == "drop_entries":
            index["clips"] = index["clips"][:5] + index["clips"][8:]
            (cache / "index.json").write_text(json.dumps(index))
        elif how == "label":
            index["clips"][0]["label"] = len(index["class_names"]) + 3
            (cache / "index.json").write_text(json.dumps(index))

    return setup


def _leftover_run_is_usable(box: Path) -> None:
    """After a full disk during training: what is there is complete (checkpoints load, logs parse)."""
    from qkf_snn.training.checkpoint import read_checkpoint
    from qkf_snn.training.logging import RunLogger

    run = box / "full" / "r"
    assert (run / "config.yaml").is_file()
    assert not (run / "results.json").exists()
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            read_checkpoint(run / name)
    RunLogger.read(run / "metrics.jsonl")


def _same_file(box: Path) -> None:
    assert (box / "file").read_text() == "keep me\n"


PARENT_IS_FILE = ("{file}", "is a file, not a directory")
CASES = [
    # -- 2. destinations that cannot be written: refused before any work -------------------------------
    Case("export-out-parent-is-file", "export nir {ckpt} --out {file}/x.nir", 2, PARENT_IS_FILE,
         check=_same_file),
    Case("export-out-is-a-directory", "export nir {ckpt} --out {dir}", 2, ("{dir}", "is a directory")),
    Case("eval-output-is-a-directory", "eval {ckpt} --output {dir}", 2,
         ("--output", "{dir}", "is a directory")),
    Case("eval-output-parent-is-file", "eval {ckpt} --output {file}/m.json", 2, PARENT_IS_FILE),
    Case("profile-out-is-a-file", "profile {ckpt} --data {cache} --out {file}", 2,
         ("--out", "{file}", "not a directory"), check=_same_file),
    Case("train-out-parent-is-file", "train crema --data {cache} --out {file} --name r " + TRAIN, 2,
         PARENT_IS_FILE),
    Case("prepare-out-parent-is-file", "data prepare crema --raw {raw} --out {file}/c " + TINY, 2,
         PARENT_IS_FILE),
    Case("synth-out-parent-is-file", "data synth crema --out {file}/s --clips 2", 2, PARENT_IS_FILE),
    Case("bench-lif-out-parent-is-file", "bench lif --out {file}/b", 2, PARENT_IS_FILE),
    Case("bench-train-out-parent-is-file", "bench train --out {file}/b", 2, PARENT_IS_FILE),
    Case("bench-all-out-parent-is-file", "bench all --out {file}/b", 2, PARENT_IS_FILE),
    Case("demo-out-parent-is-file", "demo --out {file}/d", 2, PARENT_IS_FILE),
    # -- 2. a full disk: one line naming the file, nothing half-written that looks valid --------------
    Case("prepare-disk-full", "data prepare crema --raw {raw} --out {full}/c " + TINY, 2,
         ("{full}/c", "No space left on device"), absent=("full/c/index.json",), full_disk_free_kb=24),
    Case("train-disk-full", "train crema --data {cache} --out {full} --name r " + TRAIN, 2,
         ("{full}/r", "No space left on device"), full_disk_free_kb=160, check=_leftover_run_is_usable),
    Case("export-disk-full", "export nir {ckpt} --out {full}/x.nir", 2, ("{full}/x.nir", "No space left"),
         absent=("full/x.nir",), full_disk_free_kb=0),
    Case("eval-output-disk-full", "eval {ckpt} --output {full}/m.json", 2, ("{full}/m.json", "No space left"),
         absent=("full/m.json",), full_disk_free_kb=0),
    Case("synth-disk-full", "data synth crema --out {full}/s --clips 24 --set seconds=1.0", 2,
         ("{full}/s", "No space left"), absent=("full/s",), full_disk_free_kb=64),
    # -- 5. values without bounds or types; a refused run leaves nothing ------------------------------
    Case("synth-knob-type", "data synth crema --out s --clips 2 --set audio_noise=abc", 2,
         ("audio_noise", "abc"), absent=("s",)),
    Case("prepare-n-mels-unresolvable", "data prepare crema --raw {raw} --out c --n-mels 100000", 2,
         ("--n-mels 100000", "at most 114"), absent=("c",)),
    Case("profile-weight-bits-out-of-range", "profile {ckpt} --data {cache} --weight-bits 20 --out p", 2,
         ("--weight-bits: must be an integer in 2..16, got 20",), absent=("p",)),
    Case("export-weight-bits-out-of-range", "export nir {ckpt} --out q.nir --weight-bits 1", 2,
         ("--weight-bits: must be an integer in 2..16, got 1",), absent=("q.nir",)),
    Case("train-qat-bits-range", "train crema --data {cache} --out r --name r --qat-bits 0 " + TRAIN, 2,
         ("quant.bits: must be an integer in 2..16, got 0",), absent=("r",)),
    Case("train-unknown-model", f"train crema --data {{cache}} --out runs --name r {TRAIN} --model nope", 2,
         ("nope",), absent=("runs",)),
    Case("train-unknown-neuron", "train crema --data {cache} --out runs --name r --neuron nope " + TRAIN, 2,
         ("nope",), absent=("runs",)),
    Case("train-bad-cache", "train crema --data {raw} --out runs --name r " + TRAIN, 2, ("{raw}",),
         absent=("runs",)),
    Case("train-unknown-energy-model", "train crema --data {cache} --out runs --name r --energy-model nope "
         + TRAIN, 2, ("--energy-model 'nope'", "h45_fp32_paper", "platform_loihi"), absent=("runs",)),
    Case("train-energy-budget-without-unit", "train crema --data {cache} --out runs --name r "
         "--energy-budget 5 " + TRAIN, 2, ("--energy-budget '5'", "uJ"), absent=("runs",)),
    # -- every other command's bad input ----------------------------------------------------------------
    Case("data-info-missing", "data info {box}/nope", 2, ("nope",)),
    Case("models-no-match", "models zzz*", 2, ("zzz*",)),
    Case("verify-missing-graph", "verify nir {box}/nope.nir --checkpoint {ckpt}", 2, ("nope.nir",)),
    Case("deploy-missing-graph", "deploy check {box}/nope.nir", 2, ("nope.nir",)),
    Case("deploy-report-parent-is-file", "deploy check {graph} --report {file}/r.md", 2, PARENT_IS_FILE),
    Case("deploy-report-is-a-directory", "deploy check {graph} --report {dir}", 2,
         ("{dir}", "is a directory")),
    Case("sweep-energy-bad-unit", "sweep energy crema --data {cache} --out sw --budgets 2uJ,3uW", 2,
         ("--budgets", "3uW", "not an energy"), absent=("sw",)),
    Case("sweep-energy-empty-list", "sweep energy crema --data {cache} --out sw --weights ' '", 2,
         ("--weights", "no empty item"), absent=("sw",)),
    Case("sweep-energy-unknown-model", "sweep energy crema --data {cache} --out sw --weights 1 "
         "--energy-model nope", 2, ("--energy-model", "nope"), absent=("sw",)),
    Case("sweep-energy-out-parent-is-file", "sweep energy crema --data {cache} --out {file}/sw --weights 1",
         2, PARENT_IS_FILE),
    Case("sweep-report-missing", "sweep report {box}/nope", 2, ("nope", "no such directory")),
    # -- 1. a failed check must fail ------------------------------------------------------------------
    Case("verify-divergence-exits-1", "verify nir {graph} --checkpoint {other} --data {cache} --samples 2 "
         "--no-fold-check", 1, ("FAILED", "first divergence"), stream="stdout", one_line=False),
    Case("deploy-check-fails-exits-1", "deploy check {graph} --platform loihi2 --report {box}/r.md", 1,
         ("FAIL",), stream="stdout", one_line=False, present=("r.md",)),
    # -- 3. tampered caches: one line naming the cache -----------------------------------------------
    Case("cache-truncated-npy-info", "data info {box}/tampered", 2, ("tampered",), setup=_tamper("truncate")),
    Case("cache-truncated-npy-train", "train crema --data {box}/tampered --out runs --name r " + TRAIN, 2,
         ("tampered",), setup=_tamper("truncate"), absent=("runs",)),
    Case("cache-overwritten-header-info", "data info {box}/tampered", 2, ("tampered",),
         setup=_tamper("header")),
    Case("cache-dropped-index-entries-info", "data info {box}/tampered", 2, ("tampered",),
         setup=_tamper("drop_entries"), lines=2),  # audio and video arrays each hold the dropped rows
    Case("cache-label-outside-classes-info", "data info {box}/tampered", 2, ("tampered",),
         setup=_tamper("label")),
]  # fmt: skip


# --- running the cases -------------------------------------------------------------------------------


@dataclass
class Outcome:
    box: Path
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    skipped: str = ""
    cpu_s: float = 0.0
    error: BaseException | None = None
    subs: dict = field(default_factory=dict)


def _mount_full_disk(path: Path, free_kb: int) -> str:
    """A 2 MB tmpfs at ``path`` with ``free_kb`` left free; returns why not ("" when mounted)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root"
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FULL_DISK_KB}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}"
    with open(path / ".fill", "wb") as fh:
        try:
            fh.write(b"\0" * (FULL_DISK_KB * 1024))
        except OSError:
            pass
    fill = path / ".fill"
    size = fill.stat().st_size
    os.truncate(fill, max(0, size - free_kb * 1024))
    return ""


def _run_case(case: Case, world: dict, root: Path) -> Outcome:
    box = root / case.id
    box.mkdir()
    out = Outcome(box)
    try:
        (box / "file").write_text("keep me\n")
        (box / "dir").mkdir()
        subs = {**{k: str(v) for k, v in world.items()}, "file": str(box / "file"), "dir": str(box / "dir"),
                "full": str(box / "full"), "box": str(box)}  # fmt: skip
        out.subs = subs
        if case.full_disk_free_kb is not None:
            out.skipped = _mount_full_disk(box / "full", case.full_disk_free_kb)
            if out.skipped:
                return out
        if case.setup is not None:
            case.setup(box, world)
        argv = [QKF, *(a.format(**subs) for a in shlex.split(case.command))]
        with open(root / f"{case.id}.out", "w+") as so, open(root / f"{case.id}.err", "w+") as se:
            proc = subprocess.Popen(argv, cwd=box, env=ENV, stdout=so, stderr=se, text=True)
            _, status, usage = os.wait4(proc.pid, 0)  # with the CPU time this command took
            proc.returncode = os.waitstatus_to_exitcode(status)
            so.seek(0), se.seek(0)
            out.code, out.stdout, out.stderr = proc.returncode, so.read(), se.read()
        out.cpu_s = usage.ru_utime + usage.ru_stime
        if case.check is not None:
            try:
                case.check(box)
            except BaseException as err:  # reported by the test, with the command's output
                out.error = err
    finally:
        if case.full_disk_free_kb is not None and os.path.ismount(box / "full"):
            (box / "full" / ".fill").unlink(missing_ok=True)
    return out


def _selected(request) -> list[Case]:
    """The cases this session runs (all, or those chosen with -k)."""
    ids = {
        item.callspec.params["case"].id
        for item in request.session.items
        if item.module is sys.modules[__name__]
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    }
    return [c for c in CASES if c.id in ids]


@pytest.fixture(scope="module")
def outcomes(request, world, tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("cases")
    cases = _selected(request)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # one subprocess per core of the CI machine
            done = pool.map(lambda c: _run_case(c, world, root), cases)
            results = dict(zip([c.id for c in cases], done, strict=True))
        cpu = sorted(((o.cpu_s, k) for k, o in results.items()), reverse=True)
        print(
            f"\n{len(cases)} failure cases in {time.perf_counter() - started:.1f} s wall (2 at a time), "
            f"{sum(c for c, _ in cpu):.1f} s CPU; most: " + ", ".join(f"{k} {c:.1f} s" for c, k in cpu[:4])
        )
        yield results
    finally:
        for case in cases:
            full = root / case.id / "full"
            if os.path.ismount(full):
                subprocess.run(["umount", "-l", str(full)], check=False)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_failure(case: Case, outcomes: dict[str, Outcome]) -> None:
    out = outcomes[case.id]
    if out.skipped:
        pytest.skip(out.skipped)
    shown = (
        f"$ qkf {case.command}\nexit {out.code}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-3000:]}"
    )
    assert "Traceback" not in out.stderr + out.stdout, shown
    assert out.code == case.code, shown
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    if case.one_line:
        assert len(lines) == case.lines, shown
        assert all(line.startswith("error: ") for line in lines), shown
    text = lines[0] if case.stream == "stderr" else out.stdout
    for part in case.culprit:
        assert part.format(**out.subs) in text, shown
    for rel in case.absent:
        assert not (out.box / rel).exists(), f"{rel} was left behind\n{shown}"
    for rel in case.present:
        assert (out.box / rel).exists(), f"{rel} is missing\n{shown}"
    stale = [str(p) for p in out.box.rglob(".*.tmp")]
    assert not stale, f"temporary files left: {stale}\n{shown}"
    if out.error is not None:
        raise AssertionError(f"{out.error}\n{shown}") from out.error


def test_every_command_is_covered() -> None:
    """Each command and sub-command of `qkf --help` has a case in the table."""
    from typer.main import get_command

    from qkf_snn.cli.main import app

    root = get_command(app)
    commands = set()
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        commands |= {f"{name} {sub}" for sub in subs} if subs else {name}
    covered = {" ".join(shlex.split(c.command)[:2]) for c in CASES} | {c.command.split()[0] for c in CASES}
    assert commands - covered == set()


# --- 4. one writer per run directory and per cache ----------------------------------------------------


def _wait_for_lock(folder: Path, proc: subprocess.Popen, timeout: float = 600) -> dict:
    """Wait until ``proc`` holds the lock of ``folder`` (its pid is in the lock file)."""
    from qkf_snn.io import LOCK_FILE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before taking the lock: {proc.stderr.read()}")
        try:
            info = json.loads((folder / LOCK_FILE).read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("pid") == proc.pid:
            return info
        time.sleep(0.05)
    raise AssertionError(f"no lock on {folder} after {timeout} s")


def _train_args(world: dict, out: Path, name: str, *extra: str) -> list[str]:
    base = f"train crema --data {world['cache']} --out {out} --name {name} {TRAIN}"
    return [QKF, *shlex.split(base), *extra]


@pytest.mark.slow
def test_a_second_train_into_a_running_run_is_refused_and_the_first_completes(world, tmp_path) -> None:
    run = tmp_path / "runs" / "same"
    first = subprocess.Popen(
        _train_args(world, tmp_path / "runs", "same", "--epochs", "2", "--seed", "1"),
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        holder = _wait_for_lock(run, first)
        os.kill(first.pid, signal.SIGSTOP)  # keep it mid-run, holding the lock, for as long as we need
        try:
            second = subprocess.run(
                _train_args(world, tmp_path / "runs", "same", "--epochs", "2", "--seed", "2"),
                env=ENV, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        finally:
            os.kill(first.pid, signal.SIGCONT)
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 2, second.stderr
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert str(run) in lines[0] and f"pid {first.pid}" in lines[0] and holder["host"] in lines[0]
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    # the first run's files are its own: its seed, its two epochs once each, its results
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["run"]["seed"] == 1
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 2


@pytest.mark.slow
def test_the_lock_of_a_killed_run_does_not_block_its_resumption(world, tmp_path) -> None:
    from qkf_snn.io import LOCK_FILE

    run = tmp_path / "runs" / "killed"
    first = subprocess.Popen(
        _train_args(world, tmp_path / "runs", "killed"), env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_lock(run, first)
    first.kill()  # SIGKILL: no cleanup of any kind
    first.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == first.pid  # the dead holder's note stays
    again = subprocess.run(
        _train_args(world, tmp_path / "runs", "killed", "--resume"), env=ENV, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert (run / "results.json").is_file()


HOLD = """
import sys
from qkf_snn.io import FolderLock
lock = FolderLock(sys.argv[1], "--out", "")
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def test_prepare_into_a_cache_being_written_is_refused(world, tmp_path) -> None:
    """Another process holds the cache's lock (as a running prepare does): refused in one line, nothing
    written; once it ends (here: killed), the same prepare goes through."""
    cache = tmp_path / "cache"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cache)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        args = [QKF, "data", "prepare", "crema", "--raw", str(world["raw"]), "--out", str(cache),
                *shlex.split(TINY)]  # fmt: skip
        refused = subprocess.run(args, env=ENV, capture_output=True, text=True)
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr
        assert str(cache) in lines[0] and f"pid {holder.pid}" in lines[0], lines
        assert sorted(p.name for p in cache.iterdir()) == [".qkf.lock"]
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.wait()
    done = subprocess.run(args, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (cache / "index.json").is_file()
