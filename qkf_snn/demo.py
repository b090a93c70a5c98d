"""The demo pipeline: the main job end to end on synthetic data, resumable step by step (`qkf demo`).

synthesise a CREMA-D-layout raw set → prepare the cache → train audio, video and audio-visual models
(deployable QKFormer presets, demo recipes) → evaluate on test once with the validation-selected
checkpoint → profile the AV model → export it to NIR → verify it spike for spike in Norse → export it
again with 8-bit weights, verify that file bit-exact against the quantized model, evaluate the quantized
model on val and test and check the file against every chip (`qkf deploy check`) → one summary.
Every step leaves its result on disk and is skipped when it is already there, so a rerun (or a run
after an interruption) only does what is missing.

The steps are one table, ``STEPS``: adding a step is one entry (its title, a function of the settings
that does or reuses the work, and the summary key of its result). A result that holds ``passed`` is a
check, and a failed check fails the demo (``failed_checks``: `qkf demo` exits 1). What the summary
prints is the CLI's (``cli/demo.py``), and the README block is ``readme_block`` here.

This module sits above ``hardware`` and below ``cli``: it is the one piece of the library that uses
every layer (datasets, training, the profiler and NIR), so no layer below may own it; the CLI only
parses the options and prints the summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from qkf_snn.resources import recipe_dir

if TYPE_CHECKING:
    from qkf_snn.training import TrainConfig

MODALITIES = ("audio", "video", "av")
DEPLOY_BITS = 8  # the weight width of the demo's integer export: Loihi 2's, Speck's and Xylo's


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    clips: int = 240  # synthetic CREMA-D clips (stratified 80/10/10 into train/val/test)
    seed: int = 0
    time_steps: int = 4
    image_size: int = 32  # video frames, pixels per side
    n_mels: int = 32  # audio: mel bands per window
    audio_width: int = 32  # audio: STFT frames per window (one window per time step)
    epochs: int | None = None  # None: the demo recipes' value
    workers: int = 2  # processes for `prepare`
    verify_samples: int = 8
    console: Console = field(default_factory=Console)

    @property
    def raw(self) -> Path:
        return self.out / "raw"

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    def run_dir(self, modality: str) -> Path:
        return self.out / "runs" / modality


@dataclass(frozen=True)
class Step:
    """One step: the rule printed before it, what it does, and where its result goes in the summary
    (``("models", "av")`` → ``summary["models"]["av"]``; empty: the step has no result)."""

    title: str
    run: Callable[[DemoSettings], Any]
    key: tuple[str, ...] = ()


def run_demo(s: DemoSettings) -> dict[str, Any]:
    """Run (or finish) the demo in ``s.out``; returns the summary that is also written as JSON."""
    con, started = s.console, time.perf_counter()
    s.out.mkdir(parents=True, exist_ok=True)
    # The recipes' CPU instruction set, pinned before this process runs any tensor code (synthesis and
    # preparation too), so that training's pin is in effect: same numbers on every host of one kind.
    from qkf_snn.training.determinism import pin_cpu_isa

    isas = {_config(s, modality).run.cpu_isa for modality in MODALITIES}
    pin_cpu_isa(isas.pop() if len(isas) == 1 else None)

    results: dict[str, Any] = {}
    for n, step in enumerate(STEPS, 1):
        con.rule(f"[bold]step {n}/{len(STEPS)}[/bold] {step.title}")
        result = step.run(s)
        if step.key:
            node = results
            for part in step.key[:-1]:
                node = node.setdefault(part, {})
            node[step.key[-1]] = result
    summary = {
        "protocol": _protocol(s, results),
        **results,
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    from qkf_snn.io import atomic_write_bytes, atomic_write_json

    atomic_write_json(s.out / "summary.json", summary)
    atomic_write_bytes(s.out / "summary.md", readme_block(summary).encode())
    return summary


def failed_checks(summary: dict[str, Any]) -> list[str]:
    """The summary keys of the steps whose check failed (a result whose ``passed`` is false)."""
    failed = []
    for step in STEPS:
        result: Any = summary
        for part in step.key:
            result = result.get(part, {}) if isinstance(result, dict) else {}
        if step.key and isinstance(result, dict) and result.get("passed") is False:
            failed.append(".".join(step.key))
    return failed


def _protocol(s: DemoSettings, results: dict[str, Any]) -> str:
    profile, nir = results["profile"], results["nir"]
    return (
        f"synthetic CREMA-D layout, {s.clips} clips, stratified 80/10/10 split (seed {s.seed}); "
        f"T={s.time_steps}; {_numerics(results['models']['av'].get('numerics'))}; "
        "checkpoint chosen on validation accuracy, test evaluated once; "
        f"energy: {profile['energy_model']}, per sample of the val split; NIR check on "
        f"{nir['samples']} test clips"
    )


# --- steps -------------------------------------------------------------------------------------------
def _synthesise(s: DemoSettings) -> None:
    from qkf_snn.datasets import synthesize

    raw = s.raw
    marker = raw / "synth.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("complete") and meta.get("clips") == s.clips and meta.get("seed") == s.seed:
            s.console.print(f"reusing {raw}")
            return
    synthesize("crema", raw, clips=s.clips, seed=s.seed)
    s.console.print(f"wrote {s.clips} clips to {raw}")


def _prepare(s: DemoSettings) -> None:
    from qkf_snn.datasets import prepare

    raw, cache = s.raw, s.cache
    # the synthetic clips' own length, so prepare does not tile them up to CREMA-D's usual 3 s
    hint = json.loads((raw / "synth.json").read_text()).get("prepare_hint", {})
    report = prepare(
        "crema",
        raw,
        cache,
        workers=s.workers,
        time_steps=s.time_steps,
        image_size=s.image_size,
        n_mels=s.n_mels,
        audio_width=s.audio_width,
        clip_seconds=hint.get("clip_seconds"),
        split_seed=s.seed,
    )
    s.console.print(
        f"{report.found} clips found, {report.prepared} prepared, {report.skipped} skipped → {cache}"
    )


def _config(s: DemoSettings, modality: str) -> TrainConfig:
    from qkf_snn.training import compose

    overrides: dict[str, Any] = {
        "data.dir": str(s.cache),
        "run.out": str(s.out / "runs"),
        "run.name": modality,
        "run.seed": s.seed,
        "model.name": f"qkf_{modality}_tiny_deploy",
    }
    if s.epochs is not None:
        overrides["optim.epochs"] = s.epochs
    return compose(
        "crema", modality, recipe=recipe_dir() / "demo" / f"crema_{modality}.yaml", overrides=overrides
    )


def _train(s: DemoSettings, modality: str) -> dict[str, Any]:
    import yaml

    from qkf_snn.training.loop import train

    run_dir = s.run_dir(modality)
    results_file, config_file = run_dir / "results.json", run_dir / "config.yaml"
    cfg = _config(s, modality)
    # A run made with other settings (an older recipe) would print numbers the recipe no longer gives.
    # Where the recipe file lies (a checkout, an installed wheel) is not a setting.
    saved = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
    same = saved is not None and _settings(saved) == _settings(cfg.to_dict())
    if results_file.is_file() and same:
        s.console.print(f"reusing {run_dir}")
    else:
        if config_file.is_file() and not same:
            s.console.print(f"{run_dir} was trained with other settings: training it again")
        resume = same and (run_dir / "last.pt").is_file()
        train(cfg, resume=resume, overwrite=not resume, console=s.console)
    results = json.loads(results_file.read_text())
    row = {
        "run": str(run_dir),
        "model": results["model"]["name"],
        "best_epoch": results["best_epoch"],
        "val_acc": results["val"]["acc"],
        "test_acc": results["test"]["acc"],
        "test_f1_macro": results["test"]["f1_macro"],
        "numerics": results.get("environment"),  # CPU kernels, threads: what the numbers depend on
        "epochs": results["epochs_run"],
        "fusion": results["model"]["kwargs"].get("fusion"),
    }
    for part in ("audio", "video"):
        if f"acc_{part}" in results["test"] and modality == "av":
            row[f"val_acc_{part}_head"] = results["val"][f"acc_{part}"]
            row[f"test_acc_{part}_head"] = results["test"][f"acc_{part}"]
    return row


def _profile(s: DemoSettings) -> dict[str, Any]:
    from qkf_snn.hardware.profile import CountOptions, profile_checkpoint, write_report

    run_dir = s.run_dir("av")
    out, best = run_dir / "profile-val", run_dir / "best.pt"
    report = out / "profile.json"
    if not _fresh(report, best):
        prof, meta = profile_checkpoint(best, s.cache, "val", None, 16, "cpu")
        write_report(prof, out, CountOptions(), meta, plots=True)
    doc = json.loads(report.read_text())
    main = doc["energy"]["models"][doc["energy"]["main"]]
    return {
        "report": str(out / "profile.md"),
        "json": str(report),
        "plots": sorted(str(p) for p in out.glob("*.png")),
        "energy_model": main["title"],
        "energy_uJ_per_sample": main["total_pj"] * 1e-6,
        "ann_energy_uJ_per_sample": None if main["ann_total_pj"] is None else main["ann_total_pj"] * 1e-6,
        "firing_rate": doc["break_even"]["firing_rate"],
        "spikes_per_synapse": doc["break_even"]["spikes_per_synapse"]["value"],
    }


def _export_and_verify(s: DemoSettings) -> dict[str, Any]:
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint, verify_checkpoint

    run_dir = s.run_dir("av")
    best, graph_file, verdict_file = run_dir / "best.pt", run_dir / "model.nir", run_dir / "nir_verify.json"
    if not _fresh(verdict_file, best):
        exported = export_checkpoint(best, graph_file)
        report = verify_checkpoint(graph_file, best, s.cache, samples=s.verify_samples, split="test")
        verdict = {
            "file": str(exported.path),
            "nodes": len(exported.graph.nodes),
            "edges": len(exported.graph.edges),
            "passed": report.passed,
            "samples": report.samples,
            "spikes_compared": report.spikes_compared,
            "spike_mismatches": report.spike_mismatches,
            "logits_max_abs_diff": report.logits_max_abs_diff,
            "precision": report.precision,
        }
        _write_json(verdict_file, verdict)
    return json.loads(verdict_file.read_text())


def _quantize_and_check(s: DemoSettings) -> dict[str, Any]:
    """Post-training quantization of the AV model: the file at DEPLOY_BITS, verified bit-exact against
    the quantized model (the check: ``passed``), its accuracy on val and test, and `qkf deploy check` on
    every chip (a chip that does not fit is a finding, not a failure)."""
    from qkf_snn.hardware.deployment import PLATFORMS, check_graph, markdown
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint, verify_checkpoint
    from qkf_snn.io import atomic_write_bytes
    from qkf_snn.training.evaluate import evaluate_checkpoint

    run_dir = s.run_dir("av")
    best, result_file = run_dir / "best.pt", run_dir / "deploy.json"
    graph_file = run_dir / f"model-int{DEPLOY_BITS}.nir"
    if not _fresh(result_file, best):
        exported = export_checkpoint(best, graph_file, weight_bits=DEPLOY_BITS)
        report = verify_checkpoint(graph_file, best, s.cache, samples=s.verify_samples, split="test")
        accuracy = {
            split: evaluate_checkpoint(best, s.cache, split, weight_bits=DEPLOY_BITS)["acc"]
            for split in ("val", "test")
        }
        check = check_graph(exported.graph, list(PLATFORMS.values()), path=str(graph_file))
        report_file = graph_file.with_suffix(".deploy.md")
        atomic_write_bytes(report_file, markdown(check).encode())
        result = {
            "file": str(graph_file),
            "weight_bits": DEPLOY_BITS,
            "measured_weight_bits": check.facts.weight_bits,
            "val_acc": accuracy["val"],
            "test_acc": accuracy["test"],
            "passed": report.passed,
            "samples": report.samples,
            "spikes_compared": report.spikes_compared,
            "spike_mismatches": report.spike_mismatches,
            "report": str(report_file),
            "platforms": {
                key: {
                    "verdict": p["verdict"],
                    "cores": p["cores"],
                    "cores_available": p["cores_available"],
                    "energy_bound_pj_per_sample": (p["energy"] or {}).get("upper_bound_pj_per_sample"),
                }
                for key, p in check.to_dict()["platforms"].items()
            },
        }
        _write_json(result_file, result)
    return json.loads(result_file.read_text())


def verdicts(deploy: dict[str, Any]) -> str:
    """``loihi2 PASS (71 / 128 cores), ...``: the deploy step's verdict per chip."""
    return ", ".join(
        f"{key} {p['verdict']} ({p['cores']:,} / {p['cores_available']:,} cores)"
        for key, p in deploy["platforms"].items()
    )


STEPS: list[Step] = [
    Step("synthesise a CREMA-D-layout raw set (wav + flv)", _synthesise),
    Step("prepare the decode-once cache", _prepare),
    *(
        Step(
            f"train the {m} model (selected on validation, tested once)",
            partial(_train, modality=m),
            ("models", m),
        )
        for m in MODALITIES
    ),
    Step("profile the AV model on the validation split", _profile, ("profile",)),
    Step("export the AV model to NIR and verify it in Norse", _export_and_verify, ("nir",)),
    Step(
        f"export the AV model with {DEPLOY_BITS}-bit weights, verify it, check it against each chip",
        _quantize_and_check,
        ("deploy",),
    ),
]


# --- helpers -----------------------------------------------------------------------------------------
def _numerics(env: dict[str, Any] | None) -> str:
    if not env:  # a run written before runs recorded it
        return "CPU kernels not recorded"
    pinned = {True: " (pinned)", False: " (pin not in effect)"}.get(env.get("cpu_isa_pinned"), "")
    return f"CPU kernels {env['cpu_capability']}{pinned}, {env['threads']} threads, torch {env['torch']}"


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "recipe"}


def _fresh(result: Path, source: Path) -> bool:
    """``result`` exists and was written after ``source``."""
    return result.is_file() and result.stat().st_mtime >= source.stat().st_mtime


def _write_json(path: Path, obj: Any) -> None:
    from qkf_snn.io import atomic_write_json

    atomic_write_json(path, obj)


def readme_block(summary: dict[str, Any]) -> str:
    """The README's demo results (table and energy line), from the numbers this run printed."""
    models, prof, nir = summary["models"], summary["profile"], summary["nir"]
    names = {"audio": "audio", "video": "video", "av": "audio-visual"}
    lines = ["| model | val acc | test acc |", "|---|---|---|"]
    for modality, row in models.items():
        name = names[modality] + (f" ({row['fusion']})" if row.get("fusion") else "")
        lines.append(f"| {name} | {row['val_acc']:.3f} | {row['test_acc']:.3f} |")
    av = models.get("av", {})
    if "val_acc_audio_head" in av:
        val = f"{av['val_acc_audio_head']:.3f} / {av['val_acc_video_head']:.3f}"
        test = f"{av['test_acc_audio_head']:.3f} / {av['test_acc_video_head']:.3f}"
        lines.append(f"| — its audio head / video head | {val} | {test} |")
    deploy = summary.get("deploy")
    if deploy:
        bits = deploy["weight_bits"]
        lines.append(
            f"| audio-visual, {bits}-bit weights | {deploy['val_acc']:.3f} | {deploy['test_acc']:.3f} |"
        )
    energy = prof["energy_uJ_per_sample"]
    lines += [
        "",
        f"AV energy {energy:.2f} µJ per sample ({prof['energy_model']}; validation split), firing rate "
        f"{prof['firing_rate']:.3f}, {prof['spikes_per_synapse']:.2f} spikes per synapse per inference; "
        f"NIR graph of {nir['nodes']} nodes verified in Norse on {nir['samples']} test clips: "
        f"{nir['spike_mismatches']} of {nir['spikes_compared']:,} spikes differ.",
    ]
    if deploy:
        lines += [
            "",
            f"{deploy['weight_bits']}-bit export (post-training, per output channel) verified against the "
            f"quantized model on {deploy['samples']} test clips: {deploy['spike_mismatches']} of "
            f"{deploy['spikes_compared']:,} spikes differ; `qkf deploy check`: {verdicts(deploy)}.",
        ]
    return "\n".join(lines) + "\n"
