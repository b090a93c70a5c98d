"""Options that set a config key: each option declares its dotted key beside its Typer declaration,
so the map from options to config keys is the command's signature, and nothing else.

A config-driven command (``qkf train``) declares every override as one parameter::

    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW)."), Key("optim.lr")] = None

and is decorated with ``@config_options("qkf_snn.training.config:TrainConfig", plain=(...))``, where
``plain`` lists the parameters that are not config keys (arguments, ``--config``, ``--set``,
``--resume``). Its body turns the given values into dotted overrides with
``overrides(command, locals())``; an option left unset (None) keeps the recipe's value.

How to add an option to `qkf train` (or another command decorated this way):

1. Add the field to the config dataclass (``qkf_snn/training/config.py``) with its default and a
   comment, and refuse values no run could use in ``TrainConfig.validate``.
2. Add one parameter to the command as above: type ``T | None`` where the field is ``T`` (or
   ``T | None``), default None, ``Key("section.field")``. The research code's spellings are extra
   names in ``typer.Option`` (``"--time-steps", "--time-step"``).
3. Add a value that differs from the recipe's to ``VALUES`` in ``tests/cli/train_options.py``:
   ``tests/cli/test_config_options.py`` runs every keyed option through ``qkf train`` (in process)
   and fails for an option without a value; ``tests/cli/test_wheel.py`` runs them through the
   ``qkf`` of an installed wheel into a real run's config.yaml.

Checks (``OptionMapError``, a programming error): at import, a parameter with neither a ``Key`` nor a
place in ``plain``, a keyed option whose default is not None, or a key set twice; before the command
runs (and in ``tests/cli/test_config_options.py``, for every command of the app), a key that is not a
field of the dataclass or whose field has another type than the option. So no option can silently
fall out of the map, and a misspelt key fails every run and the tests.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class OptionMapError(TypeError):
    """A command's options and its config dataclass disagree (a programming error, found at import)."""


@dataclass(frozen=True)
class Key:
    """``Annotated`` metadata: the dotted config key an option sets (Typer ignores it)."""

    path: str


def config_options(config: str, *, plain: Iterable[str]) -> Callable[[F], F]:
    """Decorator: collect each parameter's ``Key`` into the command's map, ``__config_keys__``.

    ``config`` names the dataclass as ``"module:Class"``; it is imported when the command runs (and by
    the tests), not here, so that ``qkf --help`` does not load torch. Checked here, at import: every
    parameter has a ``Key`` or is in ``plain``, keyed options default to None, no key is set twice.
    Checked by :func:`check_keys`: every key is a field of ``config`` and has the option's type."""
    plain = set(plain)

    def decorate(command: F) -> F:
        where = f"{command.__module__}.{command.__name__}"
        hints = typing.get_type_hints(command, include_extras=True)
        params = inspect.signature(command).parameters
        keys: dict[str, str] = {}
        for name, param in params.items():
            marks = [m for m in getattr(hints[name], "__metadata__", ()) if isinstance(m, Key)]
            if not marks:
                if name not in plain:
                    raise OptionMapError(f"{where}: parameter {name!r} has no Key(...) and is not in plain")
                continue
            if name in plain:
                raise OptionMapError(f"{where}: parameter {name!r} has a Key and is also in plain")
            if param.default is not None:
                raise OptionMapError(f"{where}: option {name!r} must default to None (unset: the recipe's)")
            if marks[0].path in keys.values():
                raise OptionMapError(f"{where}: two options set {marks[0].path}")
            keys[name] = marks[0].path
        if plain - set(params):
            raise OptionMapError(f"{where}: plain names no parameter: {sorted(plain - set(params))}")
        command.__config_keys__ = keys  # type: ignore[attr-defined]
        command.__config_class__ = config  # type: ignore[attr-defined]
        return command

    return decorate


def config_keys(command: Callable[..., Any]) -> dict[str, str]:
    """``{parameter name: dotted key}`` of a command decorated with :func:`config_options`."""
    return dict(command.__config_keys__)  # type: ignore[attr-defined]


@functools.cache
def check_keys(command: Callable[..., Any]) -> type:
    """Check ``command``'s keys against its config dataclass (returned): each key names a field, and
    the option's type is the field's (``X | None`` as ``X``; a path as a string)."""
    module, _, attr = command.__config_class__.partition(":")  # type: ignore[attr-defined]
    config = getattr(importlib.import_module(module), attr)
    hints = typing.get_type_hints(command, include_extras=True)
    where = f"{command.__module__}.{command.__name__}"
    for name, key in config_keys(command).items():
        option, field = _base(typing.get_args(hints[name])[0]), _base(key_type(config, key))
        if option != field:
            raise OptionMapError(f"{where}: option {name!r} is {option} but {key} is {field}")
    return config


def overrides(command: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``{dotted key: value}`` for the keyed options of ``command`` that were given (not None), as plain
    YAML values (tuples → lists, paths → str)."""
    check_keys(command)
    return {
        key: _plain(values[name]) for name, key in config_keys(command).items() if values[name] is not None
    }


def key_type(config: type, key: str) -> Any:
    """The annotation of dotted ``key`` in dataclass ``config`` (``"optim.lr"`` → ``float``). A mapping
    field whose metadata names a ``schema`` dataclass (``model.neuron``) holds that dataclass's fields."""
    cls: Any = config
    hint: Any = None
    parts = key.split(".")
    for i, part in enumerate(parts):
        known = {f.name: f for f in fields(cls)} if is_dataclass(cls) else {}
        if part not in known:
            where = ".".join(parts[:i]) or config.__name__
            raise OptionMapError(f"Key({key!r}): {where} has no field {part!r}; known: {sorted(known)}")
        hint = typing.get_type_hints(cls)[part]
        cls = known[part].metadata.get("schema", hint)
    return hint


def _base(hint: Any) -> Any:
    """``X | None`` → ``X``; a CLI parser's tuple subclass → ``tuple``; ``Path`` → ``str`` (a config
    value is YAML: paths are stored as strings)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if isinstance(hint, type) and issubclass(hint, tuple):
        return tuple
    if typing.get_origin(hint) is tuple:
        return tuple
    return str if hint is Path else hint


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value
