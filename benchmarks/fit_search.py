"""The largest deployable QKFormer that a chip takes after 8-bit quantization: a grid search.

Every value `qkf deploy check` checks except the weight width is decided by the model's structure
(neurons, synapses, fan-in/out, layers, wiring), so each grid point is built with random weights,
exported with the exporter `qkf export nir` uses (`build_graph`, default portable target), and checked
by the same library call as `qkf deploy check --json` (`check_graph`). The weight width is the one
value a float export cannot show; each synaptic node's weights are replaced by a structural stand-in
for 8-bit post-training quantization, per output channel ``sign(w) · max(1, round(127 |w| / max|w|))``:
it keeps every zero and nonzero where it is, so every count equals the float export's, and gives
exactly 8 signed bits (the real PTQ export can only round more weights to zero, i.e. fewer synapses).

Grid (see ``GRID``): family (audio encoder alone or the AV model with concat fusion), input size, last
stage width E (stages E/4, E/2, E), stage-3 depth, MLP ratio. Axes that cannot raise the largest size
are checked only next to each winner (``_neighbours``): T (no checked value depends on it, asserted on
one point; only the energy bound per sample scales with T); heads (they change the attention's few
neurons, not one parameter); a block in stage 1 or 2 instead of 3 (a block costs the same 7 layers in
any stage, and at a 32x32 input the same synapses, 4 * (3 + 2 * mlp) * E^2, but 1/16 or 1/4 of a
stage-3 block's parameters). Monotone pruning: along the stage-3 depth and along E, cores, neurons
and synapses only grow, so the deepest passing depth is found by bisection and widths stop at the
first E that fails every platform at depth 1.

    python benchmarks/fit_search.py --out runs/fit-search        # JSON + Markdown, ~10 min on 1 core
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from qkf_snn.hardware.deployment import PLATFORMS, check_graph
from qkf_snn.hardware.nir.export import build_graph
from qkf_snn.models import create_model

PLATFORM_KEYS = ("loihi2", "spinnaker2")  # the two whose limits a QKFormer's wiring can meet at all
GRID: dict[str, tuple[Any, ...]] = {
    "family": ("audio", "av"),
    "input": (32, 64),
    "mlp_ratio": (2.0, 4.0),
    "heads": ((1, 2, 2),),
    "depths12": ((1, 1),),
    "E": (64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512),
    "depth3": tuple(range(1, 17)),
}
BUILDERS = {"audio": "qkf_audio_tiny_deploy", "av": "qkf_av_tiny_deploy"}
NUM_CLASSES = 6  # the demo's CREMA-D layout


def integer_stand_in(graph: nir.NIRGraph, bits: int = 8) -> nir.NIRGraph:
    """``graph`` with every weight (and Scale) replaced by symmetric ``bits``-bit integers per output
    channel that keep each weight's sign and its zero / nonzero pattern (a weight never rounds to 0)."""
    top = 2 ** (bits - 1) - 1
    nodes = {}
    for name, node in graph.nodes.items():
        attr = "weight" if isinstance(node, nir.Conv2d | nir.Affine | nir.Linear) else None
        attr = "scale" if isinstance(node, nir.Scale) else attr
        if attr is None:
            nodes[name] = node
            continue
        w = np.asarray(getattr(node, attr), dtype=np.float64)
        rows = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(-1, 1)
        peak = np.abs(rows).max(axis=1, keepdims=True)
        q = np.sign(rows) * np.maximum(1, np.round(top * np.abs(rows) / np.where(peak > 0, peak, 1)))
        new = copy.copy(node)
        setattr(new, attr, q.reshape(w.shape).astype(np.int8 if bits <= 8 else np.int32))
        nodes[name] = new
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))


def model_kwargs(p: dict[str, Any]) -> dict[str, Any]:
    e = p["E"]
    return {
        "num_classes": NUM_CLASSES,
        "input_size": (p["input"], p["input"]),
        "dims": (e // 4, e // 2, e),
        "depths": (*p["depths12"], p["depth3"]),
        "heads": p["heads"],
        "mlp_ratio": p["mlp_ratio"],
        "time_steps": p.get("time_steps", 4),
    }


def evaluate(p: dict[str, Any]) -> dict[str, Any]:
    """Build, export, stand-in quantize and check one grid point on Loihi 2 and SpiNNaker 2."""
    torch.manual_seed(0)
    model = create_model(BUILDERS[p["family"]], **model_kwargs(p)).eval()
    params = sum(t.numel() for t in model.parameters())
    report = check_graph(integer_stand_in(build_graph(model)), [PLATFORMS[k] for k in PLATFORM_KEYS])
    f = report.facts
    row = {**p, "params": params, "neurons": f.neurons, "synapses": f.synapses, "layers": len(f.layers)}
    row["heads"], row["depths12"] = list(p["heads"]), list(p["depths12"])
    for r in report.platforms:
        failed = [
            {"name": c.name, "limit": c.limit, "value": c.value} for c in r.constraints if c.passed is False
        ]
        row[r.key] = {"verdict": r.verdict, "cores": r.cores, "failed": failed}
    return row


def _passes(row: dict[str, Any], key: str) -> bool:
    return row[key]["verdict"] == "PASS"


def search() -> list[dict[str, Any]]:
    """Every platform's deepest passing stage-3 depth for each (outer point, E), by bisection: along
    the depth, cores, neurons and synapses only grow, so a failing depth fails at every larger one."""
    cache: dict[tuple, dict[str, Any]] = {}
    outer = ("family", "input", "mlp_ratio", "heads", "depths12")
    for combo in itertools.product(*(GRID[k] for k in outer)):
        base = dict(zip(outer, combo, strict=True))
        for e in GRID["E"]:
            if e // 4 % base["heads"][0] or e // 2 % base["heads"][1] or e % base["heads"][2]:
                continue

            def at(d3: int, e: int = e, base: dict[str, Any] = base) -> dict[str, Any]:
                key = (*base.values(), e, d3)
                if key not in cache:
                    cache[key] = row = evaluate({**base, "E": e, "depth3": d3})
                    verdicts = " ".join(f"{k} {row[k]['verdict']} {row[k]['cores']}" for k in PLATFORM_KEYS)
                    print(f"{len(cache):4d} {key}: {row['params']:,} params, {verdicts}", flush=True)
                return cache[key]

            depths = GRID["depth3"]
            for key in PLATFORM_KEYS:
                lo, hi = 0, len(depths)  # depths[:lo] pass, depths[hi:] fail
                while lo < hi:
                    mid = (lo + hi) // 2
                    if _passes(at(depths[mid]), key):
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < len(depths):
                    at(depths[lo])  # the first failing depth: its failed constraints are the boundary
            if not any(_passes(at(depths[0]), k) for k in PLATFORM_KEYS):
                break  # wider only adds neurons and synapses
    return list(cache.values())


def _same_structure_over_t() -> bool:
    p = {"family": "av", "input": 32, "mlp_ratio": 2.0, "heads": (1, 2, 2), "depths12": (1, 1), "E": 64}
    a, b = evaluate({**p, "depth3": 1, "time_steps": 4}), evaluate({**p, "depth3": 1, "time_steps": 8})
    keep = ("params", "neurons", "synapses", "layers", *PLATFORM_KEYS)
    return all(a[k] == b[k] for k in keep)


def _neighbours(best: dict[str, Any]) -> list[dict[str, Any]]:
    """The next-larger configurations of ``best``: one more stage-3 block, the next width, the next MLP
    ratio, one more block in stage 1 or 2 (each on its own); and the same size with twice the heads."""
    out = [{**best, "depth3": best["depth3"] + 1}]
    widths = [e for e in GRID["E"] if e > best["E"]]
    if widths:
        out.append({**best, "E": widths[0]})
    if best["mlp_ratio"] < max(GRID["mlp_ratio"]):
        out.append({**best, "mlp_ratio": max(GRID["mlp_ratio"])})
    d1, d2 = best["depths12"]
    out += [{**best, "depths12": (d1 + 1, d2)}, {**best, "depths12": (d1, d2 + 1)}]
    out.append({**best, "heads": tuple(2 * h for h in best["heads"])})  # same size, other heads
    return out


def _point(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("family", "input", "mlp_ratio", "heads", "depths12", "E", "depth3")
    return {k: tuple(row[k]) if isinstance(row[k], list) else row[k] for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/fit-search"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    assert _same_structure_over_t(), "a checked value changed with T"
    rows = search()
    result: dict[str, Any] = {"grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs]
                                       for k, vs in GRID.items()}, "rows": rows, "best": {}}  # fmt: skip
    for key in PLATFORM_KEYS:
        for family in GRID["family"]:
            for size in GRID["input"]:
                ok = [r for r in rows if _passes(r, key) and r["family"] == family and r["input"] == size]
                if not ok:
                    continue
                best = max(ok, key=lambda r: (r["params"], -r["synapses"]))
                nxt = [evaluate(p) for p in _neighbours(_point(best))]
                result["best"][f"{key}/{family}/{size}"] = {"best": best, "next_larger": nxt}
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_search.json").write_text(json.dumps(result, indent=1))
    lines = ["| platform / family / input | params | E | depths | heads | mlp | cores | synapses | "
             "next larger: what fails |", "|---|---:|---:|---|---|---:|---:|---:|---|"]  # fmt: skip
    for name, b in result["best"].items():
        r, key = b["best"], name.split("/")[0]
        why = "; ".join(
            f"depths {n['depths12'] + [n['depth3']]} E {n['E']} mlp {n['mlp_ratio']} heads {n['heads']}: "
            + (", ".join(f"{c['name']} {c['value']} > {c['limit']}" for c in n[key]["failed"]) or "PASS")
            for n in b["next_larger"]
        )
        lines.append(
            f"| {name} | {r['params']:,} | {r['E']} | {r['depths12'] + [r['depth3']]} | {r['heads']} | "
            f"{r['mlp_ratio']} | {r[key]['cores']} | {r['synapses']:,} | {why} |"
        )
    (args.out / "fit_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{len(rows)} grid points in {result['seconds']} s")


if __name__ == "__main__":
    main()
