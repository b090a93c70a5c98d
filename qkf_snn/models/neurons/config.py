"""``NeuronConfig``: the neuron settings a model carries, serialisable into recipes and checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from qkf_snn.errors import UserError
from qkf_snn.models.neurons.lif import NEURONS, MultiStepNeuron, make_neuron, neuron_class


@dataclass
class NeuronConfig:
    """Which neuron every spiking layer of a model uses.

    Defaults reproduce the official QKFormer neuron (SpikingJelly LIF, τ = 2, hard reset to 0,
    detached reset, sigmoid surrogate with slope 4, fire on ``>=``), with SpikingJelly's own update
    expression. Layers that need another threshold (the attention neurons use 0.5) pass it to
    :meth:`build`. ``form`` picks LIF's update expression ("spikingjelly", the default when unset,
    or "snntorch"); the other kinds have one update each, so they take no ``form``. A checkpoint
    saved before ``form`` existed loads with the default (its β and θ buffers are unchanged).
    """

    kind: str = "lif"
    tau: float = 2.0
    threshold: float = 1.0
    reset: str = "zero"
    decay_input: bool = True
    comparator: str = "ge"
    surrogate: str = "sigmoid"
    surrogate_params: dict[str, float] = field(default_factory=dict)
    backend: str = "auto"
    form: str | None = None

    def build(self, **overrides: Any) -> MultiStepNeuron:
        """A fresh neuron module with these settings; ``overrides`` win (e.g. ``threshold=0.5``). The
        kind's class (``NEURONS``) says which fields it reads (``config_keys``)."""
        cfg = replace(self, **overrides)
        common = dict(
            threshold=cfg.threshold,
            comparator=cfg.comparator,
            surrogate=cfg.surrogate,
            surrogate_params=dict(cfg.surrogate_params),
            backend=cfg.backend,
        )
        cls = neuron_class(cfg.kind)
        if cfg.form is not None and "form" not in cls.config_keys:
            lifs = " or ".join(repr(k) for k, c in NEURONS.items() if "form" in c.config_keys)
            raise UserError(f"neuron form applies to kind {lifs} only (kind {cfg.kind!r} has one update)")
        # A field whose default is None is unset while None: the class's own default applies.
        unset = {f.name for f in fields(cfg) if f.default is None and getattr(cfg, f.name) is None}
        own = {kw: getattr(cfg, key) for key, kw in cls.config_keys.items() if key not in unset}
        return make_neuron(cfg.kind, **own, **common)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> NeuronConfig:
        return cls(**(data or {}))
