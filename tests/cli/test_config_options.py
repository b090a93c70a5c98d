"""Every option of a config-driven command reaches its config key, and the map from options to keys
cannot lose an option: a parameter without a key, a misspelt key or a key of another type is refused
(qkf_snn/cli/options.py)."""

# No `from __future__ import annotations`: the toy commands' annotations name the test's locals.
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from train_options import EMBED_DIMS_RUN, SECOND_RUN, VALUES, assert_reached, dotted, run_options  # tests/cli

from qkf_snn.cli import train as train_cli
from qkf_snn.cli.main import app
from qkf_snn.cli.options import Key, OptionMapError, check_keys, config_keys, config_options, overrides

TRAIN = "qkf_snn.training.config:TrainConfig"


def _commands(group: typer.Typer) -> list:
    found = [c.callback for c in group.registered_commands]
    for sub in group.registered_groups:
        found += _commands(sub.typer_instance)
    return found


CONFIG_COMMANDS = [c for c in _commands(app) if hasattr(c, "__config_keys__")]


def test_train_is_config_driven_and_every_key_is_a_field_of_its_type():
    assert train_cli.train in CONFIG_COMMANDS
    for command in CONFIG_COMMANDS:
        check_keys(command)  # raises OptionMapError on a misspelt key or another type


def test_every_value_differs_from_the_default_recipe_so_a_dropped_option_shows():
    from qkf_snn.models.neurons import NeuronConfig
    from qkf_snn.training import compose

    assert set(VALUES) | set(SECOND_RUN) == set(config_keys(train_cli.train))
    default = compose("crema", "av").to_dict()
    assert default["model"]["neuron"] == {}  # the recipe leaves the neuron to NeuronConfig's defaults
    default["model"]["neuron"] = NeuronConfig().to_dict()
    for name, key in config_keys(train_cli.train).items():
        assert dotted(default, key) != {**VALUES, **SECOND_RUN}[name][1], key


@pytest.mark.parametrize("values", [VALUES, EMBED_DIMS_RUN], ids=["dims", "embed_dims"])
def test_every_option_reaches_its_key(monkeypatch, tmp_path, values):
    """In process, the training replaced by a stub."""
    from qkf_snn.cli.main import main
    from qkf_snn.training import loop

    seen = []
    monkeypatch.setattr(loop, "train", lambda cfg, **kw: seen.append(cfg))
    fill = {"DIR": str(tmp_path / "cache"), "OUT": str(tmp_path / "runs")}
    monkeypatch.setattr(sys, "argv", ["qkf", *run_options(values, fill)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0 and len(seen) == 1
    assert_reached(seen[0].to_dict(), values, fill)


# --- the map refuses what would lose an option ---------------------------------------------------------


def test_a_parameter_without_a_key_fails_at_import():
    with pytest.raises(OptionMapError, match="'lr' has no Key"):

        @config_options(TRAIN, plain=())
        def command(lr: Annotated[float | None, typer.Option()] = None) -> None: ...


def test_a_keyed_option_with_a_default_fails_at_import():
    with pytest.raises(OptionMapError, match="'lr' must default to None"):

        @config_options(TRAIN, plain=())
        def command(lr: Annotated[float, typer.Option(), Key("optim.lr")] = 1e-3) -> None: ...


def test_two_options_for_one_key_fail_at_import():
    with pytest.raises(OptionMapError, match="two options set optim.lr"):

        @config_options(TRAIN, plain=())
        def command(
            lr: Annotated[float | None, typer.Option(), Key("optim.lr")] = None,
            rate: Annotated[float | None, typer.Option(), Key("optim.lr")] = None,
        ) -> None: ...


def test_plain_must_name_parameters():
    with pytest.raises(OptionMapError, match=r"plain names no parameter: \['set_'\]"):

        @config_options(TRAIN, plain=("set_",))
        def command(lr: Annotated[float | None, typer.Option(), Key("optim.lr")] = None) -> None: ...


@pytest.mark.parametrize(
    ("key", "hint", "message"),
    [
        ("optim.lrr", float, r"optim has no field 'lrr'"),
        ("optimizer.lr", float, r"TrainConfig has no field 'optimizer'"),
        ("model.neuron.taux", float, r"model.neuron has no field 'taux'"),
        ("optim.lr", int, r"option 'value' is <class 'int'> but optim.lr is <class 'float'>"),
        ("model.neuron.tau", str, r"option 'value' is <class 'str'> but model.neuron.tau is <class 'float'>"),
        ("model.dims", int, r"option 'value' is <class 'int'> but model.dims is <class 'tuple'>"),
    ],
)
def test_a_misspelt_key_or_another_type_fails_before_the_command_runs(key, hint, message):
    @config_options(TRAIN, plain=())
    def command(value: Annotated[hint | None, typer.Option(), Key(key)] = None) -> None:
        overrides(command, locals())

    with pytest.raises(OptionMapError, match=message):
        command(value=None)


def test_overrides_are_the_given_values_as_plain_yaml():
    @config_options(TRAIN, plain=("flag",))
    def command(
        flag: bool = False,
        data: Annotated[Path | None, typer.Option(), Key("data.dir")] = None,
        dims: Annotated[train_cli.Ints | None, typer.Option(), Key("model.dims")] = None,
        lr: Annotated[float | None, typer.Option(), Key("optim.lr")] = None,
        augment: Annotated[bool | None, typer.Option(), Key("data.augment")] = None,
    ) -> dict:
        return overrides(command, locals())

    got = command(True, Path("c/d"), train_cli.parse_ints("4,8"), None, False)
    assert got == {"data.dir": "c/d", "model.dims": [4, 8], "data.augment": False}
    assert type(got["model.dims"]) is list
