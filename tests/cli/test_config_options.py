"""Every option of a config-driven command reaches its config key, and the map from options to keys
cannot lose an option: a parameter without a key, a misspelt key or a key of another type is refused
(qkf_snn/cli/options.py)."""

# No `from __future__ import annotations`: the toy commands' annotations name the test's locals.
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer

from qkf_snn.cli import train as train_cli
from qkf_snn.cli.main import app
from qkf_snn.cli.options import Key, OptionMapError, check_keys, config_keys, config_options, overrides

TRAIN = "qkf_snn.training.config:TrainConfig"

# One value per keyed option of `qkf train`, each different from what the default recipe
# (configs/crema_av.yaml) gives: (command-line words, the value config.yaml must hold). DIR and OUT
# are filled in by the test. embed_dims excludes dims, so it goes to a second run.
VALUES: dict[str, tuple[list[str], object]] = {
    "data": (["--data", "DIR"], "DIR"),
    "model": (["--model", "qkf_av_tiny"], "qkf_av_tiny"),
    "size": (["--size", "tiny"], "tiny"),
    "dims": (["--dims", "8,16,16"], [8, 16, 16]),
    "depths": (["--depths", "1,1,1"], [1, 1, 1]),
    "num_heads": (["--num-heads", "1,1,2"], [1, 1, 2]),
    "mlp_ratio": (["--mlp-ratio", "2.5"], 2.5),
    "time_steps": (["--time-steps", "2"], 2),
    "neuron": (["--neuron", "plif"], "plif"),
    "tau": (["--tau", "3.5"], 3.5),
    "surrogate": (["--surrogate", "atan"], "atan"),
    "backend": (["--backend", "reference"], "reference"),
    "fusion": (["--fusion", "qk"], "qk"),
    "fusion_stage": (["--fusion-stage", "1"], 1),
    "ogm_ge": (["--no-ogm-ge"], False),
    "ogm_alpha": (["--ogm-alpha", "0.37"], 0.37),
    "ogm_start": (["--ogm-start", "1"], 1),
    "ogm_end": (["--ogm-end", "3"], 3),
    "aux_weight": (["--aux-weight", "0.25"], 0.25),
    "energy_weight": (["--energy-weight", "0.3"], 0.3),
    "energy_budget": (["--energy-budget", "5uJ"], "5uJ"),
    "energy_model": (["--energy-model", "h45_int8_exact"], "h45_int8_exact"),
    "epochs": (["--epochs", "1"], 1),
    "batch_size": (["--batch-size", "6"], 6),
    "lr": (["--lr", "0.0023"], 0.0023),
    "min_lr": (["--min-lr", "3e-5"], 3e-5),
    "weight_decay": (["--weight-decay", "0.013"], 0.013),
    "warmup_epochs": (["--warmup-epochs", "0.5"], 0.5),
    "label_smoothing": (["--label-smoothing", "0.05"], 0.05),
    "grad_clip": (["--grad-clip", "0.7"], 0.7),
    "patience": (["--patience", "3"], 3),
    "seed": (["--seed", "7"], 7),
    "amp": (["--amp", "none"], "none"),
    "device": (["--device", "cpu"], "cpu"),
    "workers": (["--workers", "0"], 0),
    "augment": (["--no-augment"], False),
    "out": (["--out", "OUT"], "OUT"),
    "name": (["--name", "a"], "a"),
    "checkpoint_every": (["--checkpoint-every", "5"], 5),
    "progress": (["--progress", "none"], "none"),
    "threads": (["--threads", "1"], 1),
}
SECOND_RUN = {"embed_dims": (["--embed-dims", "16"], 16), "name": (["--name", "b"], "b")}
EMBED_DIMS_RUN = {**{k: v for k, v in VALUES.items() if k != "dims"}, **SECOND_RUN}


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


def _dotted(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data[part]
    return data


def test_every_value_differs_from_the_default_recipe_so_a_dropped_option_shows():
    from qkf_snn.models.neurons import NeuronConfig
    from qkf_snn.training import compose

    assert set(VALUES) | set(SECOND_RUN) == set(config_keys(train_cli.train))
    default = compose("crema", "av").to_dict()
    assert default["model"]["neuron"] == {}  # the recipe leaves the neuron to NeuronConfig's defaults
    default["model"]["neuron"] = NeuronConfig().to_dict()
    for name, key in config_keys(train_cli.train).items():
        assert _dotted(default, key) != {**VALUES, **SECOND_RUN}[name][1], key


def run_options(values: dict[str, tuple[list[str], object]], fill: dict[str, str]) -> list[str]:
    """``qkf train crema`` words that give every option in ``values`` its value."""
    return [
        "train",
        "crema",
        "--modality",
        "av",
        *(fill.get(w, w) for words, _ in values.values() for w in words),
    ]


def assert_reached(config: dict, values: dict[str, tuple[list[str], object]], fill: dict[str, str]) -> None:
    """Each option's value is at its key of ``config`` (a run's config.yaml, as a dict)."""
    keys = config_keys(train_cli.train)
    for name, (_, expected) in values.items():
        expected = fill.get(expected, expected) if isinstance(expected, str) else expected
        assert _dotted(config, keys[name]) == expected, (name, keys[name])


@pytest.mark.parametrize("values", [VALUES, EMBED_DIMS_RUN], ids=["dims", "embed_dims"])
def test_every_option_reaches_its_key(monkeypatch, tmp_path, values):
    """In process, the training replaced by a stub."""
    from qkf_snn.cli.main import main
    from qkf_snn.hardware.profile import estimator
    from qkf_snn.training import loop

    seen = []
    monkeypatch.setattr(loop, "train", lambda cfg, **kw: seen.append(cfg))
    # what the config asks of training is training's to check; here only where each value lands
    monkeypatch.setattr(estimator, "energy_terms", lambda cfg: [])
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
