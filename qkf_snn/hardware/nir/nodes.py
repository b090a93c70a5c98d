"""Our discrete-time neurons as NIR LIF / IF nodes, and back, with no rounding lost on the way.

A trained neuron computes, per step (snnTorch order, see ``qkf_snn.models.neurons.lif``)::

    U[t] = β · (1 − R[t]) · U[t−1] + s · X[t],   R[t] = 1[U[t−1] > θ'],   S[t] = 1[U[t] > θ']

NIR neurons are continuous-time; with the Euler step of length ``dt`` an NIR LIF reads
``v ← (1 − dt/τ) v + (dt·r/τ) I`` (``v_leak = 0``) and an NIR IF ``v ← v + dt·r·I``; both fire on
``v > v_threshold`` and then set ``v = v_reset``. Resetting right after the spike (NIR, Norse) and
zeroing ``U[t−1]`` at the start of the next step (snnTorch's reset delay) give the same numbers, so
the mapping is ``1 − dt/τ = β``, ``dt·r/τ = s`` (IF: ``dt·r = s``), ``v_threshold = θ'``,
``v_reset = 0``.

Exactness. :class:`DiscreteNeuron` is the contract both sides compute with: ``β`` and ``s``
recovered as ``float32(1 − dt/τ)`` and ``float32(dt·r/τ)`` (float64 arithmetic on the stored
``τ``, ``r``). The exporter picks the ``τ`` and ``r`` nearest the ideal values for which that
recovery is exact (a few ulps' search): float32 when such a pair exists (always at the default
dt = 1, where τ = 2 and r = 1 for the official LIF), float64 otherwise (e.g. dt = 1e-3, whose
float32 grid around τ = 2e-3 is too coarse to pin β and s together). The threshold is θ' itself:
for ``comparator="ge"`` it is ``nextafter(θ, −inf)``, so NIR's ``v > v_threshold`` is the model's
``U ≥ θ``. The nominal θ and the comparator go into the node's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from qkf_snn.models.neurons import MultiStepNeuron

# The NIR node types that spike (every other node is synaptic, pass-through or I/O).
SPIKING = (nir.LIF, nir.IF, nir.CubaLIF, nir.Threshold)
DEFAULT_DT = 1.0  # one model time step; τ is then in time steps (τ = 2 for the official LIF)
_ULP_SEARCH = 64  # how many float32 neighbours of the ideal τ / r to try


@dataclass(frozen=True)
class DiscreteNeuron:
    """Per-step parameters in float32: ``v ← beta·v + gain·I``, fire on ``v > threshold``, then
    ``v = v_reset``. Scalars for our neurons (one value per layer)."""

    beta: float
    gain: float
    threshold: float
    v_reset: float = 0.0


def neuron_problem(neuron: MultiStepNeuron) -> str | None:
    """Why this neuron has no exact NIR form, or None when it has one. Asks the neuron (``spiking``,
    ``leaky``), not its kind: a new kind with leaky dynamics exports with no change here."""
    if not neuron.spiking:
        return f"neuron kind {neuron.kind!r} does not spike: NIR has no node for it"
    if not neuron.leaky:
        return f"{type(neuron).__name__} dynamics have no NIR neuron (NIR has LIF, IF, LI, CubaLIF)"
    if neuron.reset_name != "zero":
        return (
            f"reset {neuron.reset_name!r} has no NIR form (NIR neurons set v = v_reset after a spike); "
            "use reset 'zero'"
        )
    if neuron.beta.numel() != 1 or neuron.threshold.numel() != 1:
        return "per-unit beta/threshold tensors are not supported by the exporter"
    return None


def discrete_params(neuron: MultiStepNeuron) -> DiscreteNeuron:
    """The float32 numbers the trained neuron computes with (β clamped as snnTorch clamps it)."""
    params = neuron.leaky_params()
    if params is None:
        raise ValueError(neuron_problem(neuron))
    beta, gain, threshold = params
    return DiscreteNeuron(beta=beta, gain=gain, threshold=threshold)


def _f32(x: float | np.ndarray) -> np.float32:
    return np.float32(x)


def recover(tau: np.ndarray | None, r: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, gain)`` in float32 from stored NIR parameters: LIF when ``tau`` is given, else IF."""
    r64 = np.asarray(r, dtype=np.float64)
    if tau is None:
        return np.ones_like(r64, dtype=np.float32), (dt * r64).astype(np.float32)
    tau64 = np.asarray(tau, dtype=np.float64)
    return (1.0 - dt / tau64).astype(np.float32), (dt * r64 / tau64).astype(np.float32)


def _near(ideal: float, dtype: type = np.float32):
    """Positive finite values of ``dtype`` from the one nearest ``ideal`` outwards, ulp by ulp."""
    up = down = dtype(ideal)
    if np.isfinite(up) and up > 0:
        yield up
    for _ in range(_ULP_SEARCH):
        up, down = np.nextafter(up, dtype(np.inf)), np.nextafter(down, dtype(-np.inf))
        for candidate in (up, down):
            if np.isfinite(candidate) and candidate > 0:
                yield candidate


def _readers_agree(tau, r, dt: float, beta, gain, checks) -> bool:
    """Every reader formula in ``checks`` gives exactly ``beta`` and ``gain`` for ``(tau, r)``."""
    for _, check in checks:
        got = check(np.array(tau), np.array(r), dt)
        if isinstance(got, str) or got[0] != beta or got[1] != gain:
            return False
    return True


def _solve(beta: np.float32, gain: np.float32, dt: float, dtype: type, checks=()) -> tuple | None:
    """``(tau, r)`` of ``dtype`` that :func:`recover` (and every reader formula in ``checks``) maps
    to exactly ``beta`` and ``gain``."""
    if beta == 1.0 and not checks:  # IF
        r = next(
            (r for r in _near(float(gain) / dt, dtype) if recover(None, np.array(r), dt)[1] == gain), None
        )
        return (None, r) if r is not None else None
    if beta == 1.0:
        return None
    # τ and r jointly: the r grid may step over the gain for one τ and hit it for a neighbour
    # that gives the same β.
    for tau in _near(dt / (1.0 - float(beta)), dtype):
        if recover(np.array(tau), np.array(1.0), dt)[0] != beta:
            continue
        for r in _near(float(gain) * float(tau) / dt, dtype):
            if recover(np.array(tau), np.array(r), dt)[1] == gain and _readers_agree(
                tau, r, dt, beta, gain, checks
            ):
                return tau, r
    return None


def reader_problem(beta: float, gain: float, dt: float, checks) -> str | None:
    """Why some reader in ``checks`` cannot reproduce ``(beta, gain)`` with any float32 τ/r near the
    ideal one, or None."""
    for name, check in checks:
        if beta == 1.0:
            return f"{name}'s import has no exact form of an IF neuron (beta = 1)"
        if _solve(np.float32(beta), np.float32(gain), dt, np.float32, ((name, check),)) is None:
            why = check(np.array(np.float32(dt / (1 - beta))), np.array(np.float32(1.0)), dt)
            detail = why if isinstance(why, str) else f"no float32 tau/r gives beta {beta}, gain {gain}"
            return f"{name}: {detail}"
    return None


def lif_node(
    p: DiscreteNeuron,
    shape: tuple[int, ...],
    dt: float,
    meta: dict,
    checks=(),
    threshold_scale: np.ndarray | None = None,
) -> nir.NIRNode:
    """An NIR ``LIF`` (β < 1) or ``IF`` (β = 1) for discrete parameters ``p`` such that
    :func:`recover` — and every reader formula in ``checks`` — gives back exactly ``p.beta`` and
    ``p.gain``. ``tau`` and ``r`` are float32 when such a pair exists (always at dt = 1 for τ = 2),
    float64 otherwise (only without ``checks``: stock readers compute in float32)."""
    beta, gain = _f32(p.beta), _f32(p.gain)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta {beta} outside [0, 1]")
    solved = _solve(beta, gain, dt, np.float32, checks)
    if solved is None and not checks:
        solved = _solve(beta, gain, dt, np.float64)
    if solved is None:
        raise ValueError(f"no tau and r reproduce beta {beta} and gain {gain} at dt={dt}")
    tau, r = solved
    full32 = lambda v: np.full(shape, v, dtype=np.float32)  # noqa: E731
    full = lambda v: np.full(shape, v, dtype=type(r))  # noqa: E731
    v_threshold = full32(p.threshold)
    if threshold_scale is not None:  # θ'/s per channel: exact, s is a power of two (models/quant.py)
        s = np.asarray(threshold_scale, np.float32).reshape(-1, *([1] * (len(shape) - 1)))
        v_threshold = (v_threshold / s).astype(np.float32)
        meta = {**meta, "threshold_scaled": "v_threshold = threshold'/s, s the weight scale per channel"}
    meta = {"dt": float(dt), "beta": float(beta), "input_gain": float(gain), **meta}
    if tau is None:
        return nir.IF(r=full(r), v_threshold=v_threshold, v_reset=full32(0.0), metadata=meta)
    return nir.LIF(
        tau=full(tau),
        r=full(r),
        v_leak=full32(0.0),
        v_threshold=v_threshold,
        v_reset=full32(0.0),
        metadata=meta,
    )


def neuron_to_nir(
    neuron: MultiStepNeuron,
    shape: tuple[int, ...],
    dt: float = DEFAULT_DT,
    checks=(),
    threshold_scale: np.ndarray | None = None,
) -> nir.NIRNode:
    """The NIR ``LIF``/``IF`` of a trained neuron (see :func:`lif_node`); ``threshold_scale``: the
    per-channel weight scale of a quantized layer, divided out of the threshold."""
    meta = {
        "threshold_nominal": float(neuron.nominal_threshold),
        "comparator": neuron.comparator,
        "reset": "zero",
        "source": f"qkf_snn {type(neuron).__name__}",
    }
    if getattr(neuron, "form", "snntorch") == "spikingjelly":
        # The same LIF, evaluated as SpikingJelly does: H = V + (I - V)/τ (decay_input) or
        # V - V/τ + I, τ in steps; the exact executor reads these to round as the model does.
        meta.update(form="spikingjelly", tau_steps=float(neuron.tau), decay_input=bool(neuron.decay_input))
    return lif_node(discrete_params(neuron), shape, dt, meta, checks, threshold_scale)


def threshold_as_lif(threshold: float, shape: tuple[int, ...], dt: float, checks=()) -> nir.NIRNode:
    """NIR ``Threshold(θ)`` (``z = [I > θ]``, stateless) as an LIF that readers without Threshold run:
    τ = dt gives β = 0 and gain 1, so ``v = 0·v + I = I``; it fires on ``v > θ`` and resets to 0."""
    meta = {"threshold_nominal": float(threshold), "comparator": "gt", "reset": "zero",
            "source": "NIR Threshold as a memoryless LIF (tau = dt)"}  # fmt: skip
    return lif_node(DiscreteNeuron(beta=0.0, gain=1.0, threshold=float(np.float32(threshold))), shape, dt,
                    meta, checks)  # fmt: skip


def nir_neuron_params(node: nir.NIRNode, dt: float) -> tuple[np.ndarray, ...]:
    """``(beta, gain, v_threshold, v_reset, v_leak_term)`` float32 arrays of an NIR LIF / IF node;
    ``v_leak_term`` is ``(dt/τ)·v_leak`` (zero for everything we export)."""
    if isinstance(node, nir.LIF):
        beta, gain = recover(node.tau, node.r, dt)
        leak = (dt / np.asarray(node.tau, np.float64) * np.asarray(node.v_leak, np.float64)).astype(
            np.float32
        )
    elif isinstance(node, nir.IF):
        beta, gain = recover(None, node.r, dt)
        leak = np.zeros_like(beta)
    else:
        raise TypeError(f"not a spiking NIR neuron: {type(node).__name__}")
    v_th = np.asarray(node.v_threshold, dtype=np.float32)
    v_reset = np.asarray(node.v_reset, dtype=np.float32)
    return beta, gain, v_th, v_reset, leak
