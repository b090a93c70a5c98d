"""What profiling a split costs compared with plain inference over the same split.

Protocol: a registered model (default ``qkf_av_tiny``: two 16/32/64 encoders on 64×64 audio windows
and video frames, T = 4), untrained, BatchNorm statistics recalibrated on the first batch so that
spikes flow as in a trained model. A "split" is ``--batches`` batches of ``--batch-size`` synthetic
samples (fixed seed). Variants, timed interleaved (a, b, c, a, b, c, ...; median over ``--repeats``):

  (a) plain inference: eval mode, no_grad, ``model(batch)`` for every batch;
  (b) ``profile_model(model, batches)``: hooks on every batch, the functional-operator audit on the
      first one, per-sample records at the end (what ``qkf profile`` runs);
  (c) (b) without the audit.

Reported: seconds per split, samples/s, ratios to (a); plus the one-off cost of turning a profile
into the report document (all conventions and energy models). Target: (b)/(a) <= 2.

Run: ``python benchmarks/bench_profile.py [--model qkf_av_tiny --batches 16 --batch-size 8]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_common import environment, interleaved_times, markdown_table, pick_device

from qkf_snn.hardware.profile import CountOptions, build_report, profile_model
from qkf_snn.models import create_model, recalibrate_bn


def run(
    model_name: str = "qkf_av_tiny",
    batches: int = 16,
    batch_size: int = 8,
    repeats: int = 5,
    threads: int = 1,
    device: str = "cpu",
) -> dict:
    dev = pick_device(device, threads)
    torch.manual_seed(0)
    model = create_model(model_name)
    split = [
        {k: v.to(dev) for k, v in model.example_batch(batch_size).items()}
        if hasattr(model, "example_batch")
        else model.example_input(batch_size, sequence=True).to(dev)
        for _ in range(batches)
    ]
    model.to(dev)
    recalibrate_bn(model, split[:1])

    def plain() -> None:
        with torch.no_grad():
            for batch in split:
                model(batch)

    steps = {
        "(a) plain inference": plain,
        "(b) profile (audit on batch 1)": lambda: profile_model(model, split),
        "(c) profile, no audit": lambda: profile_model(model, split, audit=False),
    }
    times = interleaved_times(steps, dev, repeats=repeats, iters=1, warmup=1)
    profile = profile_model(model, split)
    start = time.perf_counter()
    build_report(profile, CountOptions())
    report_s = time.perf_counter() - start
    samples = batches * batch_size
    base = times["(a) plain inference"]
    rows = [[name, f"{t:.3f}", f"{samples / t:.1f}", f"{t / base:.2f}×"] for name, t in times.items()]
    return {
        "settings": {"model": model_name, "batches": batches, "batch_size": batch_size, "repeats": repeats},
        "environment": environment(dev, threads if dev.type == "cpu" else None),
        "seconds": times,
        "ratio_profile_to_plain": times["(b) profile (audit on batch 1)"] / base,
        "ratio_no_audit_to_plain": times["(c) profile, no audit"] / base,
        "report_seconds": report_s,
        "table": markdown_table(["variant", "s per split", "samples/s", "vs (a)"], rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qkf_av_tiny")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = run(args.model, args.batches, args.batch_size, args.repeats, args.threads, args.device)
    env = result["environment"]
    print(f"{env['device']}, {env['threads']} thread(s), torch {env['versions']['torch']}, {env['date']}")
    print(
        f"{args.model}, {args.batches} batches × {args.batch_size} samples, median of {args.repeats} "
        "interleaved rounds"
    )
    print(result["table"])
    print(f"report document (all conventions and energy models): {result['report_seconds']:.3f} s, once")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
