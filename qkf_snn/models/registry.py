"""timm-style model registry: ``@register_model`` sizes, ``list_models``, ``create_model``."""

from __future__ import annotations

import fnmatch
import importlib
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from qkf_snn.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model builder under its function name."""
    if fn.__name__ in _MODELS:
        warnings.warn(f"model {fn.__name__!r} registered twice; the later one wins", stacklevel=2)
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, sorted."""
    _load_zoo()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` replace configuration values (``None`` is ignored,
    so unset command-line options keep the model's defaults)."""
    _load_zoo()
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; `qkf models` lists the registered ones")
    return _MODELS[name](**{k: v for k, v in overrides.items() if v is not None})


# Modules whose import runs their @register_model decorators.
ZOO_MODULES: list[str] = ["qkf_snn.models.zoo", "qkf_snn.models.fusion"]


def _load_zoo() -> None:
    for module in ZOO_MODULES:
        importlib.import_module(module)
