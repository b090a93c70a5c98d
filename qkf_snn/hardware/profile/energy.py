"""Energy models: a table of constants (each with its source and basis) and a dict of small
functions that turn a profile into per-layer energy. All energies are pJ per sample.

Bases: *simulated* (circuit or pre-silicon estimates), *measured* (silicon), *all-in* (one number
that already includes memory, routing and static power: add nothing on top). See docs/energy.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from qkf_snn.hardware.profile.conventions import SPLIT_LEVEL, CountOptions, layer_counts, product_counts
from qkf_snn.hardware.profile.records import Profile


@dataclass(frozen=True)
class Constant:
    value: float
    unit: str
    source: str
    basis: str  # simulated | measured | all-in (combinations allowed)
    note: str = ""


HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"
CONSTANTS: dict[str, Constant] = {
    # Arithmetic, 45 nm. MAC = multiply + add.
    "h45.fp32.mac": Constant(4.6, "pJ", HOROWITZ, "simulated", "FP32 mult 3.7 + add 0.9; arithmetic only"),
    "h45.fp32.ac": Constant(0.9, "pJ", HOROWITZ, "simulated", "FP32 add; arithmetic only"),
    "h45.fp16.mac": Constant(1.5, "pJ", HOROWITZ, "simulated", "FP16 mult 1.1 + add 0.4"),
    "h45.fp16.ac": Constant(0.4, "pJ", HOROWITZ, "simulated", "FP16 add"),
    "h45.int8.mac": Constant(0.23, "pJ", HOROWITZ, "simulated", "INT8 mult 0.2 + add 0.03"),
    "h45.int8.ac": Constant(0.03, "pJ", HOROWITZ, "simulated", "INT8 add"),
    "h45.int32.add": Constant(0.1, "pJ", HOROWITZ, "simulated", "INT32 add (Lemaire et al. ops)"),
    "h45.int32.mul": Constant(3.1, "pJ", HOROWITZ, "simulated", "INT32 mult (Lemaire et al. ops)"),
    "h45.sram.base": Constant(
        13.2,
        "pJ/access",
        "Lemaire et al., ICONIP 2022: value in their code (qualia-plugin-snn EnergyEstimationMetric._e_ram)",
        "simulated",
        "the code calls it a linear regression over Horowitz's SRAM 8 KiB 10 pJ, 32 KiB 20 pJ, 1 MiB 100 pJ; "
        "a least-squares fit of those points gives 13.26 pJ + 1.035e-5 pJ/bit: kept as the code has it",
    ),  # fmt: skip
    "h45.sram.slope": Constant(
        1.09e-5,
        "pJ/(access·bit stored)",
        "as h45.sram.base",
        "simulated",
        "access energy grows with the memory size (elements × bits)",
    ),  # fmt: skip
    # Neuromorphic platforms.
    "loihi.synop": Constant(
        23.6,
        "pJ",
        "Davies et al., IEEE Micro 38(1) 2018, Table 2 (Loihi, 14 nm)",
        "simulated",
        "pre-silicon; minimum synaptic-op energy",
    ),  # fmt: skip
    "loihi.update.active": Constant(
        81.0, "pJ", "Davies et al. 2018, Table 2", "simulated", "neuron update, active"
    ),
    "loihi.update.inactive": Constant(
        52.0, "pJ", "Davies et al. 2018, Table 2", "simulated", "neuron update, inactive"
    ),
    "loihi.spike": Constant(
        1.7, "pJ", "Davies et al. 2018, Table 2", "simulated", "spike within a tile (hops not modelled)"
    ),
    "truenorth.synevent": Constant(
        26.0,
        "pJ",
        "Merolla et al., Science 345(6197) 2014 (TrueNorth, 28 nm)",
        "measured, all-in",
        "per synaptic event including memory, routing, static power: add nothing on top",
    ),  # fmt: skip
    "spinnaker2.synop": Constant(
        450.0, "pJ", "KerasSpiking energy table, citing Höppner et al. 2019", "measured", "prototype"
    ),
    "spinnaker2.update": Constant(
        2190.0, "pJ", "KerasSpiking energy table, citing Höppner et al. 2019", "measured", "prototype"
    ),
    "spinnaker1.synop": Constant(13300.0, "pJ", "KerasSpiking energy table (SpiNNaker 1)", "measured", ""),
    "spinnaker1.update": Constant(26000.0, "pJ", "KerasSpiking energy table (SpiNNaker 1)", "measured", ""),
    "odin.sop": Constant(
        12.7, "pJ", "Frenkel et al., IEEE TBioCAS 13(1) 2019 (ODIN, 28 nm)", "measured", "per SOP"
    ),
    "darwin3.sop": Constant(
        5.47, "pJ", "Ma et al., National Science Review 2024 (Darwin3)", "measured", "per SOP"
    ),
}

# Published reference points that are not per-operation constants (listed, not used in models).
REFERENCE_POINTS: list[dict[str, Any]] = [
    {
        "platform": "Xylo Audio 2",
        "value": 6.6,
        "unit": "µJ per keyword-spotting inference",
        "basis": "measured",
    },
    {"platform": "Loihi 2", "value": None, "unit": "no public per-operation energy", "basis": "-"},
]

# When do SNNs win? Spikes per synapse per inference (or spike rate) below which they are cheaper.
BREAK_EVEN: list[dict[str, Any]] = [
    {
        "source": "Davidson & Furber 2021",
        "quantity": "spikes_per_synapse",
        "low": 1.72,
        "high": 1.72,
        "meaning": "SNN cheaper than the ANN on the same silicon below this",
    },
    {
        "source": "Dampfhoffer et al., IEEE TETCI 2023",
        "quantity": "spikes_per_synapse",
        "low": 0.15,
        "high": 1.38,
        "meaning": "SNNs compete only in this range or below, depending on architecture",
    },
    {
        "source": "Yan et al. 2024, arXiv 2409.08290",
        "quantity": "firing_rate",
        "low": 0.06,
        "high": 0.06,
        "meaning": "spike rate below which an SNN beats a ceil(log2(T+1))-bit quantized ANN",
    },
]


def constant(key: str) -> float:
    return CONSTANTS[key].value


@dataclass
class EnergyResult:
    model: str
    title: str
    basis: str
    convention: str  # which counts it prices: paper | exact
    total_pj: float
    per_layer: dict[str, float]
    components: dict[str, float]
    constants: list[str]
    ann_total_pj: float | None = None  # the ANN twin under the same model
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arithmetic_for(weight_bits: int | None) -> tuple[str, str]:
    """The 45 nm arithmetic a model's operations are priced with, and which constants that is: integer
    weights of at most 8 bits (a quantized model: ``qkf export nir --weight-bits``, or QAT) take the
    INT8 constants, everything else FP32 (INT8 is the table's only integer arithmetic)."""
    if weight_bits is not None and weight_bits <= 8:
        return "int8", "45 nm INT8 MAC/AC constants (h45.int8.*)"
    if weight_bits is not None:
        return "fp32", "45 nm FP32 MAC/AC constants (h45.fp32.*): wider than INT8, the table's only integers"
    return "fp32", "45 nm FP32 MAC/AC constants (h45.fp32.*)"


def energy_45nm(macs: float, acs: float, precision: str = "fp32") -> float:
    """E = E_MAC · MACs + E_AC · ACs in pJ (Horowitz 45 nm)."""
    return constant(f"h45.{precision}.mac") * macs + constant(f"h45.{precision}.ac") * acs


def sram_access(elements: float, bits: int) -> float:
    """Energy of one access to a 45 nm SRAM holding ``elements`` words of ``bits`` (pJ)."""
    return constant("h45.sram.base") + constant("h45.sram.slope") * elements * bits


# --- models -----------------------------------------------------------------------------------------


def _arith(convention: str, precision: str) -> Callable[[Profile, CountOptions], EnergyResult]:
    def model(profile: Profile, options: CountOptions) -> EnergyResult:
        rows = layer_counts(profile, options)
        per_layer, mac, ac = {}, 0.0, 0.0
        for r in rows:
            m, a = getattr(r, f"{convention}_mac"), getattr(r, f"{convention}_ac")
            per_layer[r.name] = energy_45nm(m, a, precision)
            mac, ac = mac + m, ac + a
        ann = energy_45nm(sum(r.ann_mac for r in rows), sum(r.ann_ac for r in rows), precision)
        notes = ["BN folded, neuron updates, pooling and residual additions excluded (paper convention)"]
        split = [r.paper_ac for r in rows if r.split_level and convention == "paper"]
        if split:
            notes.append(f"{SPLIT_LEVEL}: {len(split)} products, {sum(split):.4g} of its AC")
        return EnergyResult(
            model=f"h45_{precision}_{convention}",
            title=f"45 nm {precision.upper()} arithmetic, {convention} counts",
            basis="simulated",
            convention=convention,
            total_pj=energy_45nm(mac, ac, precision),
            per_layer=per_layer,
            components={
                "mac": constant(f"h45.{precision}.mac") * mac,
                "ac": constant(f"h45.{precision}.ac") * ac,
            },
            constants=[f"h45.{precision}.mac", f"h45.{precision}.ac"],
            ann_total_pj=ann,
            notes=notes,
        )

    return model


@dataclass(frozen=True)
class LemaireParams:
    bits: int = 32  # memory word width
    fifo: int = 0  # input/output FIFO size in words (0: the fit's minimum access energy)


def lemaire(profile: Profile, options: CountOptions, params: LemaireParams = LemaireParams()) -> EnergyResult:
    """Memory-aware model of Lemaire et al. (ICONIP 2022): E = ops + addressing + memory, priced on
    exact counts. Event-driven layers (spike/integer input) use θ_in = input spike count; layers with
    real-valued input run as formal (ANN) layers every step. The ANN twin uses the formal equations."""
    add, mul = constant("h45.int32.add"), constant("h45.int32.mul")

    def e(n: float) -> float:
        return sram_access(n, params.bits)

    per_layer: dict[str, float] = {}
    comp = {"ops": 0.0, "addressing": 0.0, "memory": 0.0}
    ann = 0.0

    def formal(r, steps: float) -> tuple[float, float, float]:
        """Formal layer over ``steps`` passes: (ops, addressing, memory)."""
        k = math.prod(r.kernel) if r.kernel else 1
        dense = r.dense_macs / max(r.time_steps, 1) * steps
        n_in, n_out = r.inputs_per_step, r.outputs_per_step
        ops = (mul + add) * dense + add * n_out * steps
        if r.op == "conv":
            addr = add * (n_in + n_out + r.out_channels * k) * steps
            mem_in = dense * e(n_in)
        else:
            addr = add * n_in * r.out_channels * steps
            mem_in = n_in * steps * e(n_in)
        mem = mem_in + dense * e(r.weights) + n_out * steps * e(n_out)
        if r.bias:
            mem += n_out * steps * e(r.out_channels)
        return ops, addr, mem

    for r in profile.synapses:
        steps = max(r.time_steps, 1)
        if r.input_kind == "real":
            ops, addr, mem = formal(r, steps)
        else:
            theta = r.input_mean * r.inputs_per_step * steps  # input spikes per sample
            events = r.events_value
            k = math.prod(r.kernel) if r.kernel else 1
            ops = add * events
            addr = (mul + add) * 2 * theta + add * theta * k if r.op == "conv" else add * events
            mem = theta * e(params.fifo) + events * e(r.weights) + 2 * events * e(r.outputs_per_step)
            if r.bias:
                mem += r.outputs_per_step * steps * e(r.out_channels)
        per_layer[r.name] = ops + addr + mem
        comp["ops"] += ops
        comp["addressing"] += addr
        comp["memory"] += mem
        ann += sum(formal(r, 1))
    for r in profile.products:
        counts = product_counts(r, options)
        ops = add * counts.exact_ac + (mul + add) * counts.exact_mac
        per_layer[r.name] = ops
        comp["ops"] += ops
        ann += (mul + add) * counts.ann_mac + add * counts.ann_ac
    for n in profile.neurons:
        ops = add * (n.membrane_updates + n.spikes) + ((mul + add) * n.membrane_updates if n.leak else 0.0)
        mem = 2 * n.membrane_updates * e(n.neurons) + n.spikes * e(params.fifo)
        per_layer[n.name] = ops + mem
        comp["ops"] += ops
        comp["memory"] += mem
    return EnergyResult(
        model="lemaire_int32",
        title=f"memory-aware 45 nm (Lemaire et al.), INT32 ops, {params.bits}-bit SRAM",
        basis="simulated",
        convention="exact",
        total_pj=sum(comp.values()),
        per_layer=per_layer,
        components=comp,
        constants=["h45.int32.add", "h45.int32.mul", "h45.sram.base", "h45.sram.slope"],
        ann_total_pj=ann,
        notes=[
            "synaptic events: exact border-aware fan-out (the paper uses θ·C_out·k²)",
            "attention products: operations only (operand memory traffic not modelled)",
            "neurons: integrate + reset adds, leak MAC (LIF), potential read+write every step",
        ],
    )


@dataclass(frozen=True)
class Platform:
    key: str
    title: str
    synop: str  # constant key per synaptic event
    update: str | None = None  # per neuron update (active, if split)
    update_inactive: str | None = None
    spike: str | None = None  # per emitted spike


PLATFORMS: dict[str, Platform] = {
    "loihi": Platform("loihi", "Intel Loihi (pre-silicon)", "loihi.synop", "loihi.update.active",
                      "loihi.update.inactive", "loihi.spike"),
    "truenorth": Platform("truenorth", "IBM TrueNorth (all-in)", "truenorth.synevent"),
    "spinnaker2": Platform("spinnaker2", "SpiNNaker 2 prototype", "spinnaker2.synop", "spinnaker2.update"),
    "spinnaker1": Platform("spinnaker1", "SpiNNaker 1", "spinnaker1.synop", "spinnaker1.update"),
    "odin": Platform("odin", "ODIN (28 nm)", "odin.sop"),
    "darwin3": Platform("darwin3", "Darwin3", "darwin3.sop"),
}  # fmt: skip


def platform_model(p: Platform) -> Callable[[Profile, CountOptions], EnergyResult]:
    def model(profile: Profile, options: CountOptions) -> EnergyResult:
        per_layer, comp = {}, {"synaptic": 0.0, "neuron": 0.0, "spike": 0.0}
        for r in layer_counts(profile, options):
            # Every exact event is one synaptic event; real-valued inputs count once per non-zero
            # (a graded spike: Loihi 2 supports them, Loihi 1 and TrueNorth would need encoding).
            energy = (r.exact_ac + r.exact_mac) * constant(p.synop)
            per_layer[r.name] = energy
            comp["synaptic"] += energy
        for n in profile.neurons:
            energy = 0.0
            if p.update:
                if p.update_inactive:
                    energy += n.active_updates * constant(p.update)
                    energy += (n.membrane_updates - n.active_updates) * constant(p.update_inactive)
                else:
                    energy += n.membrane_updates * constant(p.update)
            comp["neuron"] += energy
            if p.spike:
                spikes = n.spikes * constant(p.spike)
                comp["spike"] += spikes
                energy += spikes
            per_layer[n.name] = energy
        used = [k for k in (p.synop, p.update, p.update_inactive, p.spike) if k]
        notes = [CONSTANTS[p.synop].note] if CONSTANTS[p.synop].note else []
        if not p.update:
            notes.append("no per-update constant published: neuron updates not priced")
        return EnergyResult(
            model=p.key,
            title=p.title,
            basis=CONSTANTS[p.synop].basis,
            convention="exact",
            total_pj=sum(comp.values()),
            per_layer=per_layer,
            components=comp,
            constants=used,
            notes=notes,
        )

    return model


EnergyFn = Callable[[Profile, CountOptions], EnergyResult]
ENERGY_MODELS: dict[str, EnergyFn] = {
    "h45_fp32_paper": _arith("paper", "fp32"),
    "h45_fp32_exact": _arith("exact", "fp32"),
    "h45_fp16_exact": _arith("exact", "fp16"),
    "h45_int8_exact": _arith("exact", "int8"),
    "lemaire_int32": lemaire,
    **{f"platform_{k}": platform_model(p) for k, p in PLATFORMS.items()},
}


def estimate_energy(
    profile: Profile, options: CountOptions | None = None, models: list[str] | None = None
) -> dict[str, EnergyResult]:
    """Every (or the named) energy model applied to ``profile``."""
    options = options or CountOptions()
    names = models or list(ENERGY_MODELS)
    return {name: ENERGY_MODELS[name](profile, options) for name in names}


def break_even(spikes_per_synapse: float, firing_rate: float) -> list[dict[str, Any]]:
    """The published thresholds next to this model's values."""
    out = []
    for t in BREAK_EVEN:
        value = spikes_per_synapse if t["quantity"] == "spikes_per_synapse" else firing_rate
        verdict = "below" if value < t["low"] else "above" if value > t["high"] else "within"
        out.append({**t, "value": value, "verdict": verdict})
    return out


__all__ = [
    "BREAK_EVEN",
    "CONSTANTS",
    "ENERGY_MODELS",
    "PLATFORMS",
    "REFERENCE_POINTS",
    "Constant",
    "EnergyResult",
    "LemaireParams",
    "break_even",
    "energy_45nm",
    "estimate_energy",
    "sram_access",
]
