"""PNG plots of a profile document: firing rate per neuron layer, energy per layer by model."""

from __future__ import annotations

from pathlib import Path

from qkf_snn.io import atomic_savefig

ENERGY_PLOT_MODELS = ("h45_fp32_paper", "h45_fp32_exact", "lemaire_int32", "platform_loihi")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _colors(groups: list[str]) -> list:
    plt = _pyplot()
    palette = plt.get_cmap("tab10")
    order = list(dict.fromkeys(groups))
    return [palette(order.index(g) % 10) for g in groups]


def plot_firing_rates(doc: dict, path: Path) -> Path:
    plt = _pyplot()
    neurons = doc["measurements"]["neurons"]
    names = [n["name"] for n in neurons]
    rates = [n["firing_rate"] for n in neurons]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(names) + 1)))
    groups = [n["group"] for n in neurons]
    colors = _colors(groups)
    ax.barh(range(len(names)), rates, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.margins(y=0.01)
    ax.invert_yaxis()
    seen = dict(zip(groups, colors, strict=True))
    if len(seen) > 1:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, label=g) for g, c in seen.items()], fontsize=7)
    ax.set_xlabel("firing rate (spikes per neuron per time step)")
    p = doc["protocol"]
    ax.set_title(
        f"{p.get('model_name') or p['model']}: {p['samples']} samples, T = {p['time_steps']}", fontsize=9
    )
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path


def plot_energy(doc: dict, path: Path, models: tuple[str, ...] = ENERGY_PLOT_MODELS) -> Path:
    plt = _pyplot()
    available = [m for m in models if m in doc["energy"]["models"]]
    layers = [c["name"] for c in doc["counts"]]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(layers) + 1)))
    height = 0.8 / max(len(available), 1)
    for i, model in enumerate(available):
        per_layer = doc["energy"]["models"][model]["per_layer"]
        values = [max(per_layer.get(name, 0.0), 1e-3) for name in layers]  # log axis: floor at 1 fJ
        ax.barh([j + i * height for j in range(len(layers))], values, height=height, label=model)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(layers))], layers, fontsize=6)
    ax.margins(y=0.01)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("energy per sample (pJ, log scale)")
    ax.legend(fontsize=7)
    ax.set_title("energy per synaptic layer / attention product, by model", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path


def write_plots(doc: dict, out_dir: Path) -> dict[str, Path]:
    return {
        "firing_rates": plot_firing_rates(doc, out_dir / "firing_rates.png"),
        "energy_per_layer": plot_energy(doc, out_dir / "energy_per_layer.png"),
    }
