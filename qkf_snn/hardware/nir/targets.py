"""Export profiles: which NIR form a file takes so that a given set of readers runs it exactly.

Stock readers differ in what they accept and in how they discretise a neuron, so one form does not
fit every reader (measured on snnTorch 1.0.0, Norse 1.1.0, nirtorch 2.6, NIR 1.0.8):

- snnTorch's ``import_from_nir`` has no ``Threshold`` (nor ``SumPool2d``: nirtorch's default
  ``LPPool2d`` drops the padding and computes ``avg · k²``), flattens the batch in ``Flatten``, and
  discretises an LIF with a hard-coded ``dt = 1e-4``: ``β = 1 − 1e-4/τ`` and input gain
  ``r·1e-4/τ`` in float32 arithmetic (NumPy's NEP 50 rules); a gain other than ≈ 1 divides the
  threshold instead of scaling the input, which is exact only for powers of two.
- Norse's ``from_nir`` maps ``Threshold`` and ``Scale`` to nothing, drops ``SumPool2d`` padding,
  ignores ``r`` (gain = ``dt/τ``) and integrates ``v + dt·(1/τ)·(I − v)`` in float32 with the ``dt``
  its caller passes.

A :class:`Target` says which of these the file must satisfy; ``neuron_readers`` are the formulas
each τ/r pair is checked against (bit for bit, in float32) by :mod:`.nodes`. ``portable`` (the
default of ``qkf export nir``) satisfies all of them at once; ``nir`` is the plain NIR form (a
``Threshold`` node, ``SumPool2d`` with padding, any ``dt``) for readers that implement the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from qkf_snn.errors import UserError

# snnTorch 1.0.0's import hard-codes this step; in the file we store it rounded to float32, the value
# its float32 arithmetic actually uses, so every reader that takes dt from the metadata agrees.
SNNTORCH_DT = 1e-4
SNNTORCH_DT32 = float(np.float32(SNNTORCH_DT))


def snntorch_lif(tau: np.ndarray, r: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray] | str:
    """``(beta, gain)`` as ``snntorch.import_nir`` computes them for an LIF node (its own dt), or why
    it cannot reproduce them. The gain is what the membrane effectively sees: snnTorch feeds the
    input unscaled and divides the threshold by ``w_scale`` instead, which equals scaling the input
    bit for bit only when ``w_scale`` is a power of two (or is within ``allclose`` of 1: ignored)."""
    tau, r = np.asarray(tau, np.float32), np.asarray(r, np.float32)
    beta = 1 - (SNNTORCH_DT / tau)  # the reader's own expressions, float32 under NEP 50
    w_scale = r * SNNTORCH_DT / tau
    if np.allclose(w_scale, 1.0):
        return beta, np.ones_like(w_scale)
    mantissa, _ = np.frexp(w_scale)
    if not (mantissa == 0.5).all():
        return "snnTorch divides the threshold by the input gain: exact only for a power-of-two gain"
    return beta, w_scale


def norse_lif(tau: np.ndarray, r: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 − c, c)`` with ``c = dt · (1/τ)`` as Norse's ``LIFBoxCell`` computes it (``r`` ignored)."""
    c = (dt * (1 / torch.from_numpy(np.asarray(tau, np.float32)).float())).numpy()
    return (np.float32(1) - c).astype(np.float32), c


NeuronCheck = Callable[[np.ndarray, np.ndarray, float], "tuple[np.ndarray, np.ndarray] | str"]


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    readers: tuple[str, ...]  # readers this form is built for (names in .readers.READERS)
    dt: float | None  # fixed by a reader; None: the user's --dt
    threshold_node: bool  # NIR Threshold; False: an LIF with τ = dt, reset 0 (memoryless, v = I)
    sum_pool_node: bool  # NIR SumPool2d; False: a Conv2d with 0/1 weights (padding kept by readers)
    neuron_readers: tuple[tuple[str, NeuronCheck], ...] = ()
    dfs_chain: bool = False  # add zero ordering connectors so a depth-first executor runs it in order

    def resolve_dt(self, dt: float | None) -> float:
        if self.dt is None:
            return 1.0 if dt is None else float(dt)
        if dt is not None and float(np.float32(dt)) != float(np.float32(self.dt)):
            raise UserError(
                f"--dt {dt}: target {self.name!r} fixes dt = {self.dt:g} (a reader hard-codes it); "
                "use --target nir for another step"
            )
        return float(self.dt)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "portable",
            "runs unmodified and spike-exact on stock snnTorch, stock Norse and the qkf bridge",
            ("qkf", "snntorch", "norse"),
            SNNTORCH_DT32,
            threshold_node=False,
            sum_pool_node=False,
            neuron_readers=(("snntorch", snntorch_lif), ("norse", norse_lif)),
            dfs_chain=True,
        ),
        Target(
            "snntorch",
            "stock snnTorch and the qkf bridge (any power-of-two input gain, any beta)",
            ("qkf", "snntorch"),
            SNNTORCH_DT32,
            threshold_node=False,
            sum_pool_node=False,
            neuron_readers=(("snntorch", snntorch_lif),),
        ),
        Target(
            "norse",
            "stock Norse and the qkf bridge (gain = 1 - beta; Norse's from_nir needs dt=metadata['dt'])",
            ("qkf", "norse"),
            None,
            threshold_node=False,
            sum_pool_node=False,
            neuron_readers=(("norse", norse_lif),),
            dfs_chain=True,
        ),
        Target(
            "nir",
            "plain NIR 1.0.8 (Threshold, padded SumPool2d, IF, any dt) for readers that follow the spec",
            ("qkf",),
            None,
            threshold_node=True,
            sum_pool_node=True,
        ),
    )
}
DEFAULT_TARGET = "portable"


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UserError(f"--target {name!r}: choose one of {', '.join(TARGETS)}") from None
