"""Check a NIR graph against each platform's documented constraints: PASS/FAIL per constraint,
the cores needed, and (where the profiler's energy table has the platform) an energy bound."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nir

from qkf_snn.errors import UserError
from qkf_snn.hardware.deployment.analysis import GraphFacts, analyse
from qkf_snn.hardware.deployment.packing import PackingResult, pack
from qkf_snn.hardware.deployment.platforms import ANY, UNKNOWN, Limit, Platform
from qkf_snn.hardware.nir.io import metadata
from qkf_snn.hardware.profile import energy as energy_table


@dataclass
class ConstraintResult:
    name: str
    limit: Any
    value: Any
    passed: bool | None  # None: the limit is unknown, so it is not checked
    source: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "limit": self.limit,
            "value": self.value,
            "pass": self.passed,
            "source": self.source,
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class PlatformReport:
    key: str
    title: str
    constraints: list[ConstraintResult]
    packing: PackingResult
    cores_available: int
    packing_source: str
    energy: dict[str, Any] | None
    energy_note: str
    failed: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "FAIL" if any(c.passed is False for c in self.constraints) else "PASS"

    @property
    def cores(self) -> int:
        return self.packing.cores

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "cores": self.cores,
            "cores_available": self.cores_available,
            "constraints": [c.to_dict() for c in self.constraints],
            "packing": {"rule": self.packing.rule, "source": self.packing_source}
            | {"layers": [asdict(r) for r in self.packing.layers]},
            "energy": self.energy,
            "energy_note": self.energy_note,
        }


def _plain(value: Any) -> Any:
    if value == (ANY,):
        return "any (programmable)"
    return list(value) if isinstance(value, tuple) else value


def evaluate(limit: Limit, value: Any) -> bool | None:
    """Does ``value`` meet ``limit``? None when the limit is unknown."""
    if limit.limit is None:
        return None
    if limit.test == "le":
        return isinstance(value, int | float) and not isinstance(value, bool) and value <= limit.limit
    if limit.test == "subset":
        return ANY in limit.limit or set(value) <= set(limit.limit)
    raise ValueError(f"unknown test {limit.test!r}")


def _measure(key: str, facts: GraphFacts, packed: PackingResult) -> Any:
    extra = {"cores": packed.cores, "speck_unplaced": packed.unplaced}
    return extra[key] if key in extra else facts.measure(key)


def _energy(p: Platform, facts: GraphFacts, time_steps: int | None) -> dict[str, Any] | None:
    """Upper bound from the profiler's platform constants: every unit spikes at every step, so each
    synapse carries one event per step and each neuron updates (active) and spikes once."""
    if p.energy is None or p.energy not in energy_table.PLATFORMS:
        return None
    e = energy_table.PLATFORMS[p.energy]
    per_step = facts.synapses * energy_table.constant(e.synop)
    if e.update:
        per_step += facts.neurons * energy_table.constant(e.update)
    if e.spike:
        per_step += facts.neurons * energy_table.constant(e.spike)
    used = [k for k in (e.synop, e.update, e.spike) if k]
    return {
        "upper_bound_pj_per_step": per_step,
        "time_steps": time_steps,
        "upper_bound_pj_per_sample": per_step * time_steps if time_steps else None,
        "protocol": "every unit spikes at every step: synapses x synop + neurons x (update + spike)",
        "constants": {k: energy_table.CONSTANTS[k].value for k in used},
        "table": f"qkf_snn.hardware.profile.energy.PLATFORMS[{p.energy!r}] ({e.title})",
    }


def check_platform(p: Platform, facts: GraphFacts, time_steps: int | None = None) -> PlatformReport:
    packed = pack(facts, p.packing)
    results = []
    for limit in p.limits:
        value = _measure(limit.measure, facts, packed)
        results.append(
            ConstraintResult(
                name=limit.name,
                limit=_plain(limit.limit) if limit.limit is not None else UNKNOWN,
                value=_plain(value),
                passed=evaluate(limit, value),
                source=limit.source,
                note=limit.note,
            )
        )
    return PlatformReport(
        key=p.key,
        title=p.title,
        constraints=results,
        packing=packed,
        cores_available=p.packing.cores_available,
        packing_source=p.packing.source,
        energy=_energy(p, facts, time_steps),
        energy_note=p.energy_note,
    )


@dataclass
class DeployReport:
    path: str
    facts: GraphFacts
    platforms: list[PlatformReport]

    @property
    def passed(self) -> bool:
        return all(r.verdict == "PASS" for r in self.platforms)

    def to_dict(self) -> dict[str, Any]:
        f = self.facts
        return {
            "path": self.path,
            "graph": {
                "neurons": f.neurons,
                "hidden_neurons": f.hidden_neurons,
                "output_neurons": f.output_neurons,
                "synapses": f.synapses,
                "max_fan_in": f.max_fan_in,
                "max_fan_out": f.max_fan_out,
                "weight_bits": f.weight_bits,
                "threshold_bits": f.threshold_bits,
                "neuron_models": list(f.neuron_models),
                "multi_input_nodes": f.multi_input_names,
                "layers": [
                    {k: getattr(x, k) for k in _LAYER_KEYS} | {"shape": list(x.shape)} for x in f.layers
                ],
            },
            "platforms": {r.key: r.to_dict() for r in self.platforms},
        }


_LAYER_KEYS = ("name", "model", "neurons", "synapses", "fan_in", "fan_out", "destinations", "output")


def check_graph(graph: nir.NIRGraph, platforms: list[Platform], path: str = "") -> DeployReport:
    try:
        facts = analyse(graph)
    except UserError as err:
        raise UserError(f"{path}: {err}" if path else str(err)) from None
    steps = metadata(graph).get("time_steps")
    steps = int(steps) if isinstance(steps, int | float) and not math.isnan(steps) else None
    return DeployReport(path, facts, [check_platform(p, facts, steps) for p in platforms])


def _cell(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def markdown(report: DeployReport) -> str:
    """The report as Markdown (written next to the .nir file by the CLI)."""
    f = report.facts
    lines = [
        f"# Deployment check: {Path(report.path).name}",
        "",
        f"Graph: {f.neurons:,} neurons ({f.hidden_neurons:,} hidden, {f.output_neurons:,} output), "
        f"{f.synapses:,} synapses per step, max fan-in {f.max_fan_in:,}, max fan-out {f.max_fan_out:,}, "
        f"weight bits {f.weight_bits}, threshold bits {f.threshold_bits}, "
        f"{f.multi_input_nodes} nodes with more than one input. Counting conventions: docs/deployment.md.",
        "",
        "| layer | neuron | shape | neurons | synapses | max fan-in | max fan-out | destinations |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in f.layers:
        shape = "×".join(map(str, x.shape))
        nums = (x.neurons, x.synapses, x.fan_in, x.fan_out, x.destinations)
        lines.append(f"| {x.name} | {x.model} | {shape} | " + " | ".join(f"{v:,}" for v in nums) + " |")
    lines += [
        "",
        "| platform | verdict | cores needed | cores available | energy bound (pJ/step) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in report.platforms:
        e = f"{r.energy['upper_bound_pj_per_step']:,.0f}" if r.energy else "n/a"
        lines.append(f"| {r.key} | {r.verdict} | {r.cores:,} | {r.cores_available:,} | {e} |")
    for r in report.platforms:
        lines += ["", f"## {r.title}: {r.verdict}", "", "| constraint | limit | value | pass | source |"]
        lines.append("|---|---|---|---|---|")
        for c in r.constraints:
            ok = {True: "PASS", False: "FAIL", None: "not checked"}[c.passed]
            lines.append(f"| {c.name} | {_cell(c.limit)} | {_cell(c.value)} | {ok} | {c.source} |")
        lines += ["", f"Packing ({r.packing.rule}): {r.packing_source}.", ""]
        lines.append("| layer | neurons | synapses | cores | detail |")
        lines.append("|---|---:|---:|---:|---|")
        for row in r.packing.layers:
            lines.append(
                f"| {row.name} | {row.neurons:,} | {row.synapses:,} | {row.cores:,} | {row.detail} |"
            )
        if r.energy:
            lines += ["", f"Energy upper bound: {r.energy['upper_bound_pj_per_step']:,.0f} pJ per step "
                      f"({r.energy['protocol']}; {r.energy['table']}; {r.energy_note})."]  # fmt: skip
        else:
            lines += ["", f"Energy: not reported ({r.energy_note})."]
    return "\n".join(lines) + "\n"
