"""Reader × model table for docs/nir.md: which NIR readers load and run our exported files, and with
how many spike mismatches against the trained model.

Protocol: a synthetic CREMA-D cache (``synthesize("crema", clips=18, seed=0)``, prepared at 32×32,
T = 4), one epoch of ``qkf_{audio,video,av}_tiny_deploy`` (batch 6, CPU), each exported in the
default ``portable`` form, then ``verify_graph`` with every reader of ``READERS`` on the first 8
test clips, precision ``pinned`` (float64 synapses on both sides, float32 neurons). Readers outside
the pinned stack (Rockpool, Spyx: ``uv sync --group deploy``) are probed on the same files when
installed: load with their own ``from_nir``, and the node types / edges they refuse.

Run: ``python benchmarks/nir_readers.py [--out DIR]`` (a few minutes on 2 CPU cores), or only the
probe of files in an environment with Rockpool/Spyx: ``python benchmarks/nir_readers.py --probe F...``.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import nir
import numpy as np

from qkf_snn.errors import first_line


def probe(path: Path) -> dict[str, str]:
    """What Rockpool's and Spyx's stock importers do with one file (each only if installed)."""
    graph = nir.read(path)
    types = sorted({type(n).__name__ for n in graph.nodes.values()})
    fan_in = max(sum(1 for _, d in graph.edges if d == n) for n in graph.nodes)
    out = {"node types": ", ".join(types), "max edges into a node": str(fan_in)}
    try:
        from rockpool.nn.modules import from_nir as rockpool_from_nir
    except ImportError:
        out["rockpool"] = "not installed"
    else:
        try:
            rockpool_from_nir(graph)
            out["rockpool"] = "loads"
        except Exception as err:  # the reader's refusal is the finding
            out["rockpool"] = f"refuses: {type(err).__name__}: {first_line(err)}"
    try:
        import spyx.nir
    except ImportError:
        out["spyx"] = "not installed"
    else:
        inputs = [n for n in graph.nodes.values() if isinstance(n, nir.Input)]
        x = np.zeros((4, 1, *np.asarray(inputs[0].input_type["input"]).tolist()), np.float32)
        try:
            model, _ = spyx.nir.from_nir(graph, x, dt=float(graph.metadata.get("dt", 1.0)))
            n = len(getattr(model, "layers", []) or [])
            out["spyx"] = f"builds a Sequential of {n} modules for {len(graph.nodes)} nodes"
        except Exception as err:
            out["spyx"] = f"refuses: {type(err).__name__}: {first_line(err)}"
    return out


MODALITIES = ("audio", "video", "av")


def deploy_runs(root: Path) -> dict[str, Path]:
    """The protocol's runs: the synthetic cache in ``root/cache`` and one epoch of each deployable
    tiny model in ``root/runs``; the ``best.pt`` of each, by modality. tests/hardware/test_nir_readers.py
    checks its claims on these same runs."""
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.training.config import TrainConfig
    from qkf_snn.training.loop import train

    synthesize("crema", root / "raw", clips=18, seed=0)
    prepare("crema", root / "raw", root / "cache", time_steps=4, image_size=32, n_mels=32, audio_width=32,
            progress=False)  # fmt: skip
    run = {"out": str(root / "runs"), "progress": "none", "device": "cpu", "bn_recalibration": 0}
    ckpts = {}
    for modality in MODALITIES:
        cfg = TrainConfig.from_dict(
            {
                "dataset": "crema",
                "modality": modality,
                "model": {"name": f"qkf_{modality}_tiny_deploy"},
                "data": {"dir": str(root / "cache"), "batch_size": 6},
                "optim": {"epochs": 1},
                "run": run,
            }
        )
        ckpts[modality] = train(cfg).run_dir / "best.pt"
    return ckpts


def measure(root: Path, samples: int = 8) -> list[dict[str, object]]:
    from qkf_snn.hardware.nir import READERS, read_graph, verify_graph
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint, spread_indices
    from qkf_snn.hardware.nir.verify import collate
    from qkf_snn.training.checkpoint import load_model
    from qkf_snn.training.data import build_dataset

    rows = []
    for modality, ckpt in deploy_runs(root).items():
        path = export_checkpoint(ckpt, root / f"{modality}.nir").path
        graph, loaded = read_graph(path), load_model(ckpt)
        data = build_dataset(loaded.config, root / "cache", "test")
        batch = collate([data[i] for i in spread_indices(len(data), samples)])
        for name in READERS:
            r = verify_graph(graph, loaded.model, [batch], check_fold=False, reader=name)
            first = r.first_divergence
            rows.append(
                {
                    "reader": name,
                    "model": f"qkf_{modality}_tiny_deploy ({len(graph.nodes)} nodes, {len(graph.edges)} edges)",  # noqa: E501
                    "loads": "yes" if r.loaded or r.load_error.startswith("runs") else "no",
                    "runs": "yes" if r.loaded else "no",
                    "spikes identical": (
                        f"yes: 0 of {r.spikes_compared:,} differ"
                        if r.passed
                        else (f"no: {r.spike_mismatches:,} differ, first {first.node}" if r.loaded else "—")
                    ),
                    "refused / error": r.load_error or "",
                }
            )
        for k, v in probe(path).items():
            if k in ("rockpool", "spyx"):
                rows.append({"reader": k, "model": f"qkf_{modality}_tiny_deploy", "loads": v})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help="Keep cache, runs and .nir files here (default: a temp dir)."
    )
    parser.add_argument("--probe", type=Path, nargs="+", help="Only probe these .nir files (Rockpool, Spyx).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.probe:
        for path in args.probe:
            print(path, probe(path))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.out or Path(tmp))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
