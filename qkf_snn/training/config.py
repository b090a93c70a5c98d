"""Run configuration: small dataclasses per component, recipe files, command-line overrides.

A run's settings come from three layers, later ones winning: the dataclass defaults below, a recipe
file (``configs/<dataset>_<modality>.yaml`` unless ``--config`` names another; YAML or TOML), and
overrides given as dotted keys (``optim.lr=3e-4``), which the CLI builds from its options and from
``--set``. The result is validated once and saved next to the run as ``config.yaml``, which is itself
a recipe: ``qkf train ... --config runs/x/config.yaml`` repeats the run.
"""

from __future__ import annotations

import copy
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from qkf_snn.datasets.registry import dataset_names
from qkf_snn.errors import UserError, first_line
from qkf_snn.io import atomic_write_bytes
from qkf_snn.models.fusion import FUSIONS
from qkf_snn.models.neurons import NeuronConfig
from qkf_snn.models.neurons.lif import FORMS
from qkf_snn.models.quant import QuantSpec, check_bits
from qkf_snn.resources import recipe_dir
from qkf_snn.training.determinism import CPU_ISA_ENV
from qkf_snn.units import parse_energy

MODALITIES: tuple[str, ...] = ("audio", "video", "av")
SIZES: tuple[str, ...] = ("tiny", "small")
# The original research code's --model names: each is this project's encoder of the chosen modality
# at the size that code trained, so its command lines run unchanged (`--model qkf_snn`).
RESEARCH_MODELS: dict[str, str] = {"qkf_snn": "small"}
AMP_MODES: tuple[str, ...] = ("auto", "none", "bf16", "fp16")
FREE_FORM = ("model.neuron.", "model.overrides.")  # mappings whose keys the model checks, not us
CONFIG_DIR = recipe_dir()  # the shipped recipes (qkf_snn/configs; the checkout's configs/ links there)


@dataclass
class ModelConfig:
    """Which registered model, at which size. ``None`` keeps the registered model's default."""

    name: str | None = None  # registry name; None: qkf_{modality}_{size}
    size: str = "tiny"  # tiny (CPU demo) | small (the seed's 48/96/192, heads 2/4/6, depths 2/4/8)
    embed_dims: int | None = None  # the seed's --embed-dims: last stage width E, stages E/4, E/2, E
    dims: tuple[int, ...] | None = None  # per-stage widths (instead of embed_dims)
    depths: tuple[int, ...] | None = None  # blocks per stage
    heads: tuple[int, ...] | None = None  # attention heads per stage (the seed's --num-heads)
    mlp_ratio: float | None = None
    # NeuronConfig fields: kind, tau, surrogate, ... (the schema: what `qkf train --tau` is checked against)
    neuron: dict[str, Any] = field(default_factory=dict, metadata={"schema": NeuronConfig})
    fusion: str = "concat"  # AV only: a name in models.fusion.FUSIONS (concat | sum | qk)
    fusion_stage: int = -1  # AV with fusion qk: the stage after which the streams attend to each other
    overrides: dict[str, Any] = field(default_factory=dict)  # any other create_model keyword


@dataclass
class DataConfig:
    dir: str | None = None  # the prepared cache (`qkf data prepare ... --out DIR`)
    time_steps: int | None = None  # T; must divide the cache's T (None: the cache's)
    augment: bool = True  # train split only: crop/flip frames, mask spectrograms
    batch_size: int = 32  # global: split over DDP ranks
    eval_batch_size: int | None = None  # None: batch_size
    workers: int = 2  # DataLoader worker processes per rank


@dataclass
class OptimConfig:
    epochs: int = 100
    lr: float = 6.25e-4  # peak learning rate (AdamW)
    min_lr: float = 1e-6  # end of the cosine
    weight_decay: float = 1e-4  # not applied to biases, BN and other 1-D parameters
    warmup_epochs: float = 5.0  # linear warm-up, counted in optimiser steps
    betas: tuple[float, float] = (0.9, 0.999)
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables


@dataclass
class BalanceConfig:
    """Modality balancing for AV models (OGM-GE, Peng et al. CVPR 2022; unimodal auxiliary losses)."""

    ogm_ge: bool = False  # on-the-fly gradient modulation of the dominant encoder
    alpha: float = 0.8  # OGM strength: the dominant encoder's gradients × (1 − tanh(α·ρ))
    start_epoch: int = 0  # modulation active for epochs start_epoch ≤ e ≤ end_epoch (0-based)
    end_epoch: int = 50
    noise: bool = True  # GE: add Gaussian noise of the gradient's std (generalisation enhancement)
    target: str = "step"  # what k scales: "step" (the encoder's lr for the step; right for AdamW) or
    # "gradient" (the original code's rescaled gradient, which Adam's normalisation largely undoes)
    aux_weight: float = 0.0  # weight of the unimodal head losses CE(audio) + CE(video); at 0 the heads
    # still learn, as linear probes on detached features (per-modality accuracy, no effect on encoders)


# The profiler's energy model the training estimate uses unless told otherwise: the paper's 45 nm
# FP32 convention (hardware/profile/energy.py ENERGY_MODELS; the name is checked there, since the
# training layer does not import the hardware layer).
DEFAULT_ENERGY_MODEL = "h45_fp32_paper"


@dataclass
class EnergyConfig:
    """Energy-aware training (docs/training.md): a differentiable per-sample energy estimate
    priced by one of the profiler's energy models, as a penalty and/or a budget. Both off (weight 0,
    no budget) is plain training; configs saved before this section load that way."""

    weight: float = 0.0  # penalty λ: loss += λ · E / E_ref (E_ref: the first step's estimate)
    budget: str | None = None  # e.g. "5uJ" per sample: a Lagrange multiplier keeps E under it
    model: str = DEFAULT_ENERGY_MODEL  # a key of the profiler's ENERGY_MODELS
    multiplier_lr: float = 0.05  # budget: multiplier += multiplier_lr · (E / budget − 1) per step
    start_epoch: int = 0  # first epoch (0-based) the energy enters the loss; logged from the start

    @property
    def active(self) -> bool:
        return self.weight > 0 or self.budget is not None

    @property
    def budget_pj(self) -> float | None:
        return None if self.budget is None else parse_energy(self.budget, "energy.budget")


@dataclass
class QuantConfig:
    """Quantization-aware training (``models/quant.py``): every conv runs its BN-folded weights as
    ``bits``-bit integers times a power-of-two scale (straight-through gradients; BN frozen at its
    running statistics), so the run's forward pass is exactly its export with ``--weight-bits bits``.
    None: float training. Usually with ``run.resume_from`` (fine-tuning a float checkpoint)."""

    bits: int | None = None
    per_channel: bool = True  # one scale per output channel (False: per layer)

    @property
    def spec(self) -> QuantSpec | None:
        return None if self.bits is None else QuantSpec(self.bits, self.per_channel)


@dataclass
class RunConfig:
    seed: int = 0
    patience: int = 20  # early stopping: epochs without a better validation score; 0 disables
    amp: str = "auto"  # auto (bf16 on GPU, off on CPU) | none | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda
    out: str = "runs"  # parent folder of run directories
    name: str | None = None  # run directory name; None: <dataset>_<modality>_<model>_s<seed>
    bn_recalibration: int = 16  # batches of unaugmented train clips that set BN statistics exactly
    # before each validation (short runs: the running averages lag the weights); 0: running averages
    checkpoint_every: int = 50  # also save last.pt every N optimiser steps (exact mid-epoch resume)
    log_every: int = 10  # steps between step-level log records
    progress: str = "auto"  # auto (a bar on terminals) | bar | lines | none
    threads: int | None = None  # torch CPU threads per process; None: torch's default
    # Reproducible numbers (see training/determinism.py): deterministic kernels, and CPU libraries
    # pinned to one instruction set (None: the host's best), so hosts of one kind agree bit for bit.
    deterministic: bool = False
    cpu_isa: str | None = None  # avx2 | None
    resume_from: str | None = None  # a checkpoint whose weights the run starts from (fine-tuning)


@dataclass
class TrainConfig:
    dataset: str = "crema"
    modality: str = "av"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    run: RunConfig = field(default_factory=RunConfig)
    recipe: str | None = None  # the recipe file these settings started from (informational)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def resolved_dict(self) -> dict[str, Any]:
        """``to_dict()`` with the registry name filled in: what checkpoints record."""
        data = self.to_dict()
        data["model"]["name"] = self.model_name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        cfg = _build(cls, data, source, "")
        cfg.validate()
        return cfg

    @property
    def model_name(self) -> str:
        return self.model.name or f"qkf_{self.modality}_{self.model.size}"

    @property
    def run_name(self) -> str:
        return self.run.name or f"{self.dataset}_{self.modality}_{self.model_name}_s{self.run.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out) / self.run_name

    def validate(self) -> None:
        """One UserError line naming the key for every value no run could use."""
        _choice("dataset", self.dataset, dataset_names())
        _choice("modality", self.modality, MODALITIES)
        _choice("model.size", self.model.size, SIZES)
        _choice("model.fusion", self.model.fusion, tuple(FUSIONS))
        _choice("run.amp", self.run.amp, AMP_MODES)
        _choice("balance.target", self.balance.target, ("step", "gradient"))
        _choice("run.device", self.run.device.split(":")[0], ("auto", "cpu", "cuda"))
        _choice("run.progress", self.run.progress, ("auto", "bar", "lines", "none"))
        if self.run.cpu_isa is not None:
            _choice("run.cpu_isa", self.run.cpu_isa, tuple(CPU_ISA_ENV))
        if self.model.embed_dims is not None and self.model.dims is not None:
            raise UserError("model.embed_dims and model.dims both given: use one of them")
        positive = {
            "optim.epochs": self.optim.epochs,
            "optim.lr": self.optim.lr,
            "data.batch_size": self.data.batch_size,
            "run.log_every": self.run.log_every,
        }
        optional_positive = {
            "data.time_steps": self.data.time_steps,
            "data.eval_batch_size": self.data.eval_batch_size,
            "model.embed_dims": self.model.embed_dims,
            "run.threads": self.run.threads,
        }
        for key, value in {**positive, **optional_positive}.items():
            if (key in positive or value is not None) and not value > 0:
                raise UserError(f"{key}: must be > 0, got {value}")
        non_negative = {
            "optim.min_lr": self.optim.min_lr,
            "optim.weight_decay": self.optim.weight_decay,
            "optim.warmup_epochs": self.optim.warmup_epochs,
            "optim.grad_clip": self.optim.grad_clip,
            "data.workers": self.data.workers,
            "balance.alpha": self.balance.alpha,
            "balance.aux_weight": self.balance.aux_weight,
            "energy.weight": self.energy.weight,
            "energy.start_epoch": self.energy.start_epoch,
            "run.patience": self.run.patience,
            "run.checkpoint_every": self.run.checkpoint_every,
            "run.bn_recalibration": self.run.bn_recalibration,
        }
        for key, value in non_negative.items():
            if value < 0:
                raise UserError(f"{key}: must be >= 0, got {value}")
        if not self.energy.multiplier_lr > 0:
            raise UserError(f"energy.multiplier_lr: must be > 0, got {self.energy.multiplier_lr}")
        if not self.energy.model:
            raise UserError("energy.model: empty; name one of the profiler's energy models")
        _ = self.energy.budget_pj  # one line naming energy.budget when it is not an energy
        if self.quant.bits is not None:
            check_bits(self.quant.bits, "quant.bits")
        if not 0 <= self.optim.label_smoothing < 1:
            raise UserError(f"optim.label_smoothing: must be in [0, 1), got {self.optim.label_smoothing}")
        if self.modality != "av" and (self.balance.ogm_ge or self.balance.aux_weight):
            raise UserError(
                "balance.ogm_ge / balance.aux_weight balance two modalities; "
                f"--modality {self.modality} has one"
            )
        unknown = set(self.model.neuron) - {f.name for f in fields(NeuronConfig)}
        if unknown:
            known = ", ".join(f.name for f in fields(NeuronConfig))
            raise UserError(f"model.neuron: unknown key(s) {sorted(unknown)}; known: {known}")
        form = self.model.neuron.get("form")
        if form is not None and form not in FORMS:
            raise UserError(f"model.neuron.form: unknown value {form!r}; choose {' or '.join(FORMS)}")
        for key in ("dims", "depths", "heads"):
            value = getattr(self.model, key)
            if value is not None and (not value or any(v < 1 for v in value)):
                raise UserError(f"model.{key}: must be positive integers, got {list(value)}")


# --- recipes and overrides --------------------------------------------------------------------------


def default_recipe(dataset: str, modality: str) -> Path | None:
    """The shipped recipe ``configs/<dataset>_<modality>.yaml``, if there is one."""
    path = CONFIG_DIR / f"{dataset}_{modality}.yaml"
    return path if path.is_file() else None


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file as a nested dict (YAML, or TOML by extension)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"--config {path}: not a readable YAML/TOML recipe ({first_line(err)})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def compose(
    dataset: str,
    modality: str,
    *,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults ← recipe (the given file, else the default one if it exists) ← dotted overrides."""
    _choice("dataset", dataset, dataset_names())
    _choice("--modality", modality, MODALITIES)
    path = Path(recipe) if recipe is not None else default_recipe(dataset, modality)
    data = TrainConfig(dataset=dataset, modality=modality).to_dict()
    if path is not None:
        layer = read_recipe(path)
        for key in ("dataset", "modality"):
            given = dataset if key == "dataset" else modality
            if key in layer and layer[key] != given:
                raise UserError(f"--config {path}: is a recipe for {key} {layer[key]!r}, not {given!r}")
        _merge(data, layer, f"--config {path}", "")
        data["recipe"] = str(path)
    overrides = overrides or {}
    for key, value in overrides.items():
        set_dotted(data, key, value)
    if "model.size" in overrides and "model.name" not in overrides and data["model"]["name"]:
        # a registered name fixes the size: silently training another size than asked would mislead
        raise UserError(
            f"--size {overrides['model.size']}: the recipe names model {data['model']['name']!r}, "
            "which fixes the size; pass --model instead"
        )
    if data["model"]["name"] in RESEARCH_MODELS:  # a size, not a registered name: qkf_<modality>_<size>
        data["model"]["name"], data["model"]["size"] = None, RESEARCH_MODELS[data["model"]["name"]]
    data["dataset"], data["modality"] = dataset, modality
    return TrainConfig.from_dict(data, source="options")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["optim"]["lr"] = value`` for ``key="optim.lr"``; free-form dicts (``model.neuron``,
    ``model.overrides``) accept new keys, everything else must exist."""
    parts = key.split(".")
    free_form = key.startswith(FREE_FORM)
    node = data
    for i, part in enumerate(parts[:-1]):
        if free_form and i >= 2 and isinstance(node, dict):
            node = node.setdefault(part, {})
            continue
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"--set {key}: unknown key {'.'.join(parts[: i + 1])!r}")
        node = node[part]
    if not isinstance(node, dict):
        raise UserError(f"--set {key}: {'.'.join(parts[:-1])!r} is not a section")
    if parts[-1] not in node and not free_form:
        raise UserError(f"--set {key}: unknown key; known in this section: {', '.join(sorted(node))}")
    node[parts[-1]] = value


def parse_set(items: list[str], example: str = "optim.lr=3e-4") -> dict[str, Any]:
    """``["optim.lr=3e-4", "model.depths=[1,1,2]"]`` → dotted overrides (values parsed as YAML; an
    empty value is None). Also parses ``qkf data synth --set`` knobs."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. {example}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise UserError(f"--set {item!r}: value is not valid YAML ({type(err).__name__})") from err
    return out


def save_config(cfg: TrainConfig, path: Path) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
    atomic_write_bytes(path, text.encode())


# --- helpers -----------------------------------------------------------------------------------------


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{key}: unknown value {value!r}; choose one of {', '.join(choices)}")


def _plain(value: Any) -> Any:
    """Tuples → lists, recursively (YAML- and JSON-friendly, loadable with weights_only)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _merge(base: dict[str, Any], layer: dict[str, Any], source: str, prefix: str) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in base and not prefix.startswith(FREE_FORM):
            known = ", ".join(sorted(base))
            raise UserError(f"{source}: unknown key {dotted!r}; known here: {known}")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _merge(base[key], value, source, f"{dotted}.")
        else:
            base[key] = copy.deepcopy(value)


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise UserError(f"{source}: unknown key(s) {sorted(prefix + k for k in unknown)}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        hint, value, key = hints[f.name], data[f.name], prefix + f.name
        if isinstance(hint, type) and is_dataclass(hint):
            kwargs[f.name] = _build(hint, value or {}, source, f"{key}.")
        else:
            kwargs[f.name] = _coerce(value, hint, key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check/convert one value against its annotation (str → number for values typed on a CLI)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if hint is Any:
        return value
    if origin is tuple:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            value = [value]  # one stage given as a scalar
        if not isinstance(value, list | tuple):
            raise UserError(f"{key}: expected a list, got {value!r}")
        items = [_coerce(v, args[0], key) for v in value]
        if len(args) == 2 and args[1] is not Ellipsis and len(items) != 2:
            raise UserError(f"{key}: expected 2 values, got {len(items)}")
        return tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise UserError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise UserError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value) if hint is float else _as_int(value)
        except (TypeError, ValueError):
            kind = "a number" if hint is float else "an integer"
            raise UserError(f"{key}: expected {kind}, got {value!r}") from None
        return number
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def _as_int(value: Any) -> int:
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)
