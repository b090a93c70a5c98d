"""Spike, SOP and energy profiling of spiking networks built from our blocks (or any snnTorch /
torch model): per layer, per sample, with every counting convention side by side.

    from qkf_snn.hardware.profile import profile_model, write_report
    profile = profile_model(model, batches)          # per-layer, per-sample measurements
    write_report(profile, "runs/profile")             # profile.json (schema v1), .md, PNGs
"""

from qkf_snn.hardware.profile.checkpoint import profile_checkpoint
from qkf_snn.hardware.profile.conventions import CountOptions, convention_totals, layer_counts
from qkf_snn.hardware.profile.counters import COUNTERS, register_counter
from qkf_snn.hardware.profile.energy import CONSTANTS, ENERGY_MODELS, EnergyResult, estimate_energy
from qkf_snn.hardware.profile.profiler import Profiler, profile_model
from qkf_snn.hardware.profile.records import Profile
from qkf_snn.hardware.profile.report import build_report, load_report, markdown, write_report

__all__ = [
    "CONSTANTS",
    "COUNTERS",
    "ENERGY_MODELS",
    "CountOptions",
    "EnergyResult",
    "Profile",
    "Profiler",
    "build_report",
    "convention_totals",
    "estimate_energy",
    "layer_counts",
    "load_report",
    "markdown",
    "profile_checkpoint",
    "profile_model",
    "register_counter",
    "write_report",
]
