"""Multi-step spiking neurons on snnTorch: LIF, PLIF, IF and QIF, and the ``make_neuron`` factory.

Every neuron is an ``snntorch.Leaky`` subclass whose ``forward`` takes ``[T, B, ...]`` and returns
spikes ``[T, B, ...]`` and starts from zero membrane on every call. Two update rules ("forms"):

``form="snntorch"`` (PLIF, IF, QIF always; LIF on request): snnTorch's ``Leaky`` order, with its
default one-step reset delay,

    R[t] = 1[U[t-1] > θ']                      (detached; the reset uses last step's spike)
    U[t] = β · (1 - R[t]) · U[t-1] + s · X[t]  (zero reset; "subtract": - R[t]·θ', "none": no reset)
    S[t] = 1[U[t] > θ']

with β = 1 - 1/τ and input scale s = 1/τ (``decay_input``). Bit-identical to ``snntorch.Leaky``.

``form="spikingjelly"`` (LIF's default: the official QKFormer neuron): SpikingJelly's ``LIFNode``
expression, operation for operation, in float32 (τ rounded to float32, IEEE division):

    H[t] = V[t-1] + (X[t] - V[t-1]) / τ        (decay_input; else H[t] = (V[t-1] - V[t-1] / τ) + X[t])
    S[t] = 1[H[t] >= θ]
    V[t] = (1 - S[t]) · H[t]  (zero, SpikingJelly's v_reset = 0), H[t] - S[t] · θ (subtract, its
           v_reset = None), H[t] (none);  V[-1] = 0; the reset is detached (detach_reset=True)

Algebraically both are the same LIF, but ``0.5·V + 0.5·X`` and ``V + (X - V)/2`` round differently
(on random float inputs 30-80 % of membranes differ in their last bits, see docs/benchmarks.md), which
flips a spike whenever H lands that close to θ. ``U`` / ``H`` (the pre-reset membrane) is what
``run`` records in both forms.

Comparator. SpikingJelly fires on ``H >= θ``; snnTorch's Heaviside fires on ``U - θ > 0``. With
``comparator="ge"`` (our default) the stored threshold is θ' = nextafter(θ, -inf) in float32, so
``U > θ'`` holds exactly when ``U >= θ`` for every float32 ``U``. This matters for the attention
neuron, whose input is an integer count: one Q spike gives H = 0.5, which must fire at θ = 0.5.
The soft reset of the SpikingJelly form subtracts θ itself (float32), as SpikingJelly does.
Neuron arithmetic always runs in float32 (a bf16 input is upcast) so θ' is never rounded away.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import snntorch as snn
import torch

from qkf_snn.errors import UserError
from qkf_snn.models.neurons.backends import resolve_backend
from qkf_snn.models.neurons.surrogate import surrogate_spec

Reset = Literal["zero", "subtract", "none"]
Comparator = Literal["ge", "gt"]
Form = Literal["spikingjelly", "snntorch"]
FORMS = ("spikingjelly", "snntorch")
NeuronKind = str  # a key of NEURONS


def effective_threshold(threshold: float, comparator: Comparator) -> torch.Tensor:
    """θ' in float32: θ itself for ``gt``, the next float below θ for ``ge`` (see module doc)."""
    theta = torch.tensor(threshold, dtype=torch.float32)
    if comparator == "ge":
        return torch.nextafter(theta, torch.tensor(-math.inf))
    if comparator == "gt":
        return theta
    raise UserError(f"unknown comparator {comparator!r}; choose 'ge' or 'gt'")


class MultiStepNeuron(snn.Leaky):
    """Base of our neurons: snnTorch ``Leaky`` with keyword-only settings and a multi-step forward.

    A neuron kind is one subclass registered with :func:`register_neuron`; what the rest of the
    package asks about a kind is a class attribute or method here, so nothing tests the kind's name:
    ``kind`` (its key in ``NEURONS`` and in recipes), ``config_keys`` (which ``NeuronConfig`` fields
    it reads, and as which keyword), ``spiking`` (the profiler's output kind), :attr:`leaky` (whether
    the fused and Triton backends can run it) and :meth:`leaky_params` (the update NIR export maps onto
    ``LIF`` / ``IF``; ``None``: no NIR form).
    """

    kind: ClassVar[str] = "lif"
    form: Form = "snntorch"  # LIF may switch to "spikingjelly"; see the module doc
    # NeuronConfig field -> constructor keyword, beyond threshold, comparator, surrogate(_params) and
    # backend, which every kind takes. NeuronConfig.build passes only these (others are not read).
    config_keys: ClassVar[dict[str, str]] = {}
    # Emits 0/1 spikes: the profiler marks its output as spikes (events), else as real values.
    spiking: ClassVar[bool] = True

    def __init__(
        self,
        *,
        beta: float,
        threshold: float = 1.0,
        input_scale: float = 1.0,
        reset: Reset = "zero",
        comparator: Comparator = "ge",
        surrogate: str = "sigmoid",
        surrogate_params: dict[str, float] | None = None,
        learn_beta: bool = False,
        backend: str = "auto",
    ) -> None:
        if reset not in ("zero", "subtract", "none"):
            raise UserError(f"unknown reset {reset!r}; choose zero, subtract or none")
        spec = surrogate_spec(surrogate, **(surrogate_params or {}))
        super().__init__(
            beta=torch.tensor(beta, dtype=torch.float32),
            threshold=effective_threshold(threshold, comparator),
            spike_grad=spec.build(),
            learn_beta=learn_beta,
            reset_mechanism=reset,
            reset_delay=True,
        )
        # snnTorch records every neuron in a class-level list (for its init_hidden helpers, which we
        # never use); leaving ours there would keep every model ever built alive.
        instances = snn.SpikingNeuron.instances
        for i in range(len(instances) - 1, -1, -1):
            if instances[i] is self:
                del instances[i]
        # A Python float rounded to float32: multiplying by it equals multiplying by the f32 tensor,
        # and reading it never synchronises with a GPU.
        self.input_scale = float(torch.tensor(input_scale, dtype=torch.float32))
        self.surrogate = spec
        self.reset_name: Reset = reset
        self.comparator: Comparator = comparator
        self.nominal_threshold = float(threshold)
        self.backend = backend

    def scaled_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the membrane sees it: ``s · X`` (no multiply when s = 1)."""
        if self.input_scale == 1.0:
            return x
        return x * self.input_scale

    def split_input_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``(x, s)`` for a backend that scales the raw input itself (``raw_input``): the neuron's
        constant input scale, or, where a subclass computes the scaled input (PLIF's learned 1 - β,
        LIF's form-dependent scale), the input already scaled (through autograd) and s = 1. A method
        of the neuron, so backends never import this module."""
        if type(self).scaled_input is MultiStepNeuron.scaled_input:
            return x, self.input_scale
        return self.scaled_input(x.float()), 1.0

    def run(self, x: torch.Tensor, record_mem: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spikes and (optionally) pre-reset membranes ``[T, B, ...]`` for input ``[T, B, ...]``."""
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects [T, B, ...], got shape {tuple(x.shape)}")
        backend = resolve_backend(self.backend, self, x)
        if backend.raw_input:  # the backend upcasts and scales the input itself (one read of x)
            return backend.run(self, x, record_mem)
        dtype = x.dtype
        spikes, mem = backend.run(self, self.scaled_input(x.float()), record_mem)
        return spikes.to(dtype), mem

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.run(x, record_mem=False)[0]

    @property
    def leaky(self) -> bool:
        """True when the update is snnTorch's leaky one (see the module doc): ``U = β·(1 − R)·U + s·X``
        (or the SpikingJelly expression of the same LIF) with 0/1 spikes; QIF's quadratic term is not."""
        return self.spiking and type(self)._base_state_function is snn.Leaky._base_state_function

    def leaky_params(self) -> tuple[float, float, float] | None:
        """``(β, s, θ')`` in float32 (β clamped as snnTorch clamps it) when :attr:`leaky`, else None:
        the numbers an exporter maps onto a discrete LIF / IF (scalar β and θ' only)."""
        if not self.leaky:
            return None
        beta32 = self.beta.detach().float().clamp(0, 1)
        return float(beta32), self._leaky_gain(beta32), float(self.threshold.float())

    def _leaky_gain(self, beta32: torch.Tensor) -> float:
        return self.input_scale

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind}, form={self.form}, beta={self.beta.item():.4g},"
            f" threshold={self.nominal_threshold:g}"
            f" ({self.comparator}), input_scale={self.input_scale:.4g}, reset={self.reset_name},"
            f" surrogate={self.surrogate.name}{self.surrogate.params}, backend={self.backend}"
        )


class LIF(MultiStepNeuron):
    """Leaky integrate-and-fire. Give ``tau`` (β = 1 - 1/τ) or ``beta`` (τ = 1/(1 - β)).

    ``form="spikingjelly"`` (default) integrates with SpikingJelly's ``LIFNode`` expression,
    ``form="snntorch"`` with snnTorch's ``Leaky`` one, U = β·U + s·X (see the module doc).
    ``decay_input=True`` (SpikingJelly's default) lets the input decay too: s = 1 - β in the
    snnTorch form, ``(X - V)/τ`` in the SpikingJelly form; otherwise the input is added unscaled.
    """

    kind = "lif"
    config_keys = {"tau": "tau", "decay_input": "decay_input", "reset": "reset", "form": "form"}

    def __init__(
        self,
        *,
        tau: float | None = 2.0,
        beta: float | None = None,
        decay_input: bool = True,
        threshold: float = 1.0,
        form: Form = "spikingjelly",
        **kwargs,
    ) -> None:
        if form not in FORMS:
            raise UserError(f"unknown LIF form {form!r}; choose {' or '.join(FORMS)}")
        if form == "spikingjelly" and kwargs.get("learn_beta"):
            raise UserError(
                "a learned beta needs form 'snntorch' (or kind 'plif'): SpikingJelly's LIF divides by tau"
            )
        if beta is None:
            if tau is None or tau < 1.0:
                raise UserError(f"LIF tau must be >= 1 (got {tau})")
            beta = 1.0 - 1.0 / tau
        elif not 0.0 <= beta <= 1.0:
            raise UserError(f"LIF beta must be in [0, 1] (got {beta})")
        else:
            if form == "spikingjelly" and beta == 1.0:
                raise UserError("LIF beta = 1 has no finite tau in the spikingjelly form; use kind 'if'")
            tau = 1.0 / (1.0 - beta) if beta < 1.0 else math.inf
        scale = float(torch.tensor(1.0) - torch.tensor(beta, dtype=torch.float32)) if decay_input else 1.0
        super().__init__(beta=beta, threshold=threshold, input_scale=scale, **kwargs)
        self.form = form
        # SpikingJelly divides by τ as a float32 (a Python float in a float32 op); kept as a plain
        # attribute, so checkpoints (β and θ' buffers) are the same in both forms.
        self.tau = float(tau)
        self.decay_input = decay_input

    def scaled_input(self, x: torch.Tensor) -> torch.Tensor:
        # The SpikingJelly form takes X unscaled: (X - V)/τ is part of its charge expression.
        return x if self.form == "spikingjelly" else super().scaled_input(x)

    def reset_threshold(self) -> float:
        """θ rounded to float32: what SpikingJelly's soft reset subtracts (θ' is only compared with).
        From the nominal value, a Python float, so reading it never synchronises with a GPU."""
        return float(torch.tensor(self.nominal_threshold, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, decay_input={self.decay_input}, " + super().extra_repr()


class PLIF(MultiStepNeuron):
    """Parametric LIF (Fang et al. 2021): β is learned (``init_tau`` sets its start value).

    With ``decay_input`` the input scale follows the learned β: s = 1 - β.
    """

    kind = "plif"
    config_keys = {"tau": "init_tau", "decay_input": "decay_input", "reset": "reset"}

    def __init__(
        self, *, init_tau: float = 2.0, decay_input: bool = True, threshold: float = 1.0, **kwargs
    ) -> None:
        if init_tau < 1.0:
            raise UserError(f"PLIF init_tau must be >= 1 (got {init_tau})")
        super().__init__(beta=1.0 - 1.0 / init_tau, threshold=threshold, learn_beta=True, **kwargs)
        self.decay_input = decay_input

    def scaled_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.decay_input:
            return x
        return x * (1.0 - self.beta.clamp(0, 1))

    def _leaky_gain(self, beta32: torch.Tensor) -> float:  # the input scale follows the learned β
        return float((1.0 - beta32) if self.decay_input else torch.tensor(1.0))


class IF(MultiStepNeuron):
    """Integrate-and-fire: U = U + X (β = 1, no leak)."""

    kind = "if"
    config_keys = {"reset": "reset"}

    def __init__(self, *, threshold: float = 1.0, **kwargs) -> None:
        super().__init__(beta=1.0, threshold=threshold, **kwargs)


class QIF(MultiStepNeuron):
    """Quadratic integrate-and-fire (SpikingJelly's QIFNode dynamics, zero reset):

        U[t] = U[t-1] + (X[t] + a0 · (U[t-1] - v_rest) · (U[t-1] - v_c)) / τ

    Below ``v_c`` the quadratic term pulls U towards ``v_rest``; above it U runs away to a spike.
    """

    kind = "qif"
    config_keys = {"tau": "tau"}

    def __init__(
        self,
        *,
        tau: float = 2.0,
        a0: float = 1.0,
        v_c: float = 0.8,
        v_rest: float = 0.0,
        threshold: float = 1.0,
        **kwargs,
    ) -> None:
        if tau <= 0:
            raise UserError(f"QIF tau must be > 0 (got {tau})")
        if "reset" in kwargs and kwargs["reset"] != "zero":
            raise UserError("QIF supports only reset='zero'")
        super().__init__(beta=1.0, threshold=threshold, **kwargs)
        self.tau, self.a0, self.v_c, self.v_rest = float(tau), float(a0), float(v_c), float(v_rest)

    def _base_state_function(self, input_: torch.Tensor) -> torch.Tensor:
        # snnTorch's zero reset calls this after zeroing self.mem where the last step spiked.
        mem = self.mem
        return mem + (input_ + self.a0 * (mem - self.v_rest) * (mem - self.v_c)) / self.tau

    def extra_repr(self) -> str:
        qif = f"tau={self.tau:g}, a0={self.a0:g}, v_c={self.v_c:g}, v_rest={self.v_rest:g}, "
        return qif + super().extra_repr()


# The neuron-kind table: kind -> class. Everything else asks the class (see MultiStepNeuron).
NEURONS: dict[str, type[MultiStepNeuron]] = {}


def register_neuron(cls: type[MultiStepNeuron]) -> type[MultiStepNeuron]:
    """Add a neuron kind under ``cls.kind`` (usable as a class decorator)."""
    NEURONS[cls.kind] = cls
    return cls


for _cls in (LIF, PLIF, IF, QIF):
    register_neuron(_cls)


def neuron_class(kind: NeuronKind) -> type[MultiStepNeuron]:
    """The class of neuron kind ``kind``; one line naming the choices when there is none."""
    if kind not in NEURONS:
        raise UserError(f"unknown neuron {kind!r}; choose one of {', '.join(NEURONS)}")
    return NEURONS[kind]


def make_neuron(kind: NeuronKind = "lif", *, surrogate: str = "sigmoid", **params) -> MultiStepNeuron:
    """Build a multi-step neuron by name: ``make_neuron("lif", tau=2.0, threshold=0.5)``."""
    cls = neuron_class(kind)
    try:
        return cls(surrogate=surrogate, **params)
    except TypeError as err:  # an argument this neuron does not take
        raise UserError(f"neuron {kind!r}: {err}") from None
