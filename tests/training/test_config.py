"""Recipes and overrides: precedence, validation with one-line errors, round trips, seed flags."""

from __future__ import annotations

from pathlib import Path

import pytest

import qkf_snn
from qkf_snn.datasets.registry import DATASETS
from qkf_snn.errors import UserError
from qkf_snn.models import count_parameters, create_model
from qkf_snn.training.build import DataInfo, model_spec
from qkf_snn.training.config import (
    CONFIG_DIR,
    MODALITIES,
    TrainConfig,
    compose,
    parse_set,
    read_recipe,
    save_config,
)

RECIPES = sorted(CONFIG_DIR.rglob("*.yaml"))
INFO = DataInfo(6, list("abcdef"), 4, (1, 64, 64), (3, 64, 64))


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_registered_dataset_and_modality_has_a_recipe(dataset):
    names = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    for modality in MODALITIES:
        assert f"{dataset}_{modality}.yaml" in names
        cfg = compose(dataset, modality)  # the config asks the registry: every entry is a valid dataset
        assert cfg.recipe == str(CONFIG_DIR / f"{dataset}_{modality}.yaml") and cfg.dataset == dataset


def test_an_unregistered_dataset_is_refused_naming_the_registered_ones():
    with pytest.raises(
        UserError, match=f"^dataset: unknown value 'kinetics'; choose one of {', '.join(DATASETS)}$"
    ):
        compose("kinetics", "av")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_shipped_recipe_loads_and_builds_its_model(path):
    raw = read_recipe(path)
    cfg = compose(raw["dataset"], raw["modality"], recipe=path)
    assert cfg.recipe == str(path)
    spec = model_spec(cfg, INFO)
    assert spec.name == cfg.model_name
    assert spec.modality == cfg.modality


def test_ave_av_recipe_balances_by_default():
    cfg = compose("ave", "av")
    assert cfg.balance.ogm_ge and cfg.balance.aux_weight > 0
    assert cfg.balance.alpha == 0.3 and cfg.balance.end_epoch == 9


def test_layers_defaults_then_recipe_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim: {lr: 0.01, epochs: 7}\ndata: {batch_size: 8}\n")
    cfg = compose("crema", "audio", recipe=recipe, overrides={"optim.lr": "3e-4"})
    assert cfg.optim.lr == 3e-4  # override beats recipe, and a CLI string becomes a float
    assert cfg.optim.epochs == 7  # recipe beats default
    assert cfg.data.batch_size == 8
    assert cfg.optim.weight_decay == TrainConfig().optim.weight_decay  # default kept


def test_toml_recipes_are_read_too(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[optim]\nlr = 0.005\n[model]\nfusion = "qk"\nfusion_stage = 1\n')
    cfg = compose("ave", "av", recipe=recipe)
    assert (cfg.optim.lr, cfg.model.fusion, cfg.model.fusion_stage) == (0.005, "qk", 1)


def test_saved_config_is_a_recipe_that_repeats_the_run(tmp_path):
    cfg = compose("ave", "av", overrides={"model.dims": [8, 16, 32], "model.neuron.tau": 3.0, "run.seed": 5})
    save_config(cfg, tmp_path / "config.yaml")
    again = compose("ave", "av", recipe=tmp_path / "config.yaml")
    assert again.to_dict() | {"recipe": None} == cfg.to_dict() | {"recipe": None}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optim.lrr": 1}, "--set optim.lrr: unknown key"),
        ({"optimizer.lr": 1}, "unknown key 'optimizer'"),
        ({"optim.lr": "fast"}, "optim.lr: expected a number, got 'fast'"),
        ({"optim.epochs": 2.5}, "optim.epochs: expected an integer"),
        ({"optim.lr": -1.0}, "optim.lr: must be > 0"),
        ({"model.fusion": "attention"}, "model.fusion: unknown value 'attention'"),
        ({"run.amp": "fp8"}, "run.amp: unknown value 'fp8'"),
        ({"model.size": "huge"}, "model.size: unknown value 'huge'"),
        ({"model.neuron.taux": 2}, "model.neuron: unknown key(s) ['taux']"),
        ({"model.neuron.form": "norse"}, "model.neuron.form: unknown value 'norse'"),
        ({"data.augment": "maybe"}, "data.augment: expected true or false"),
        ({"optim.label_smoothing": 1.0}, "optim.label_smoothing: must be in [0, 1)"),
        ({"model.embed_dims": 192, "model.dims": [1, 2, 3]}, "model.embed_dims and model.dims both given"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(overrides, message):
    with pytest.raises(UserError) as err:
        compose("crema", "av", overrides=overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_balancing_a_single_modality_is_refused():
    with pytest.raises(UserError, match="balance two modalities; --modality audio has one"):
        compose("ave", "audio", overrides={"balance.ogm_ge": True})


def test_unknown_dataset_modality_and_recipe_keys(tmp_path):
    with pytest.raises(UserError, match="dataset: unknown value 'cremad'"):
        compose("cremad", "av")
    with pytest.raises(UserError, match="--modality: unknown value 'audiovisual'"):
        compose("crema", "audiovisual")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {learning_rate: 0.1}\n")
    with pytest.raises(UserError, match=r"--config .*bad.yaml: unknown key 'optim.learning_rate'"):
        compose("crema", "av", recipe=bad)
    bad.write_text("dataset: ave\n")
    with pytest.raises(UserError, match="is a recipe for dataset 'ave', not 'crema'"):
        compose("crema", "av", recipe=bad)
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(UserError, match="not a readable YAML/TOML recipe"):
        compose("crema", "av", recipe=bad)
    with pytest.raises(UserError, match="no such file"):
        compose("crema", "av", recipe=tmp_path / "missing.yaml")


def test_parse_set_reads_yaml_values():
    assert parse_set(["optim.lr=3e-4", "model.depths=[1, 1, 2]", "data.augment=false"]) == {
        "optim.lr": "3e-4",  # YAML 1.1 reads 3e-4 as a string; the config coerces it
        "model.depths": [1, 1, 2],
        "data.augment": False,
    }
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_set(["optim.lr"])


def test_seed_flags_build_the_seed_model():
    """--embed-dims 192 --num-heads 2 4 6 --depths 2 4 8 is qkf_*_small."""
    seed_flags = {"model.embed_dims": 192, "model.heads": [2, 4, 6], "model.depths": [2, 4, 8]}
    cfg = compose("crema", "av", overrides={"model.size": "small", **seed_flags})
    spec = model_spec(cfg, INFO)
    assert spec.kwargs["dims"] == [48, 96, 192]
    built = spec.build()
    reference = create_model("qkf_av_small", num_classes=6)
    assert count_parameters(built) == count_parameters(reference)


def test_model_spec_takes_sizes_from_the_data():
    cfg = compose("crema", "audio", overrides={"model.size": "tiny"})
    info = DataInfo(5, list("abcde"), 2, (1, 32, 16), (3, 24, 24))
    spec = model_spec(cfg, info)
    assert spec.kwargs["input_size"] == [32, 16] and spec.kwargs["time_steps"] == 2
    assert spec.kwargs["num_classes"] == 5
    model = spec.build()
    assert model.example_batch(2)["audio"].shape == (2, 2, 1, 32, 16)


def test_the_shipped_recipes_are_the_repository_configs():
    """One copy: the package's recipes are what a checkout's top-level configs/ shows."""
    assert CONFIG_DIR == Path(qkf_snn.__file__).parent / "configs"
    assert (Path(__file__).resolve().parents[2] / "configs").resolve() == CONFIG_DIR.resolve()


def test_size_with_a_recipe_that_names_the_model_is_refused():
    recipe = CONFIG_DIR / "crema_av-deploy.yaml"
    message = r"--size tiny: the recipe names model 'qkf_av_small_deploy'.*--model"
    with pytest.raises(UserError, match=message):
        compose("crema", "av", recipe=recipe, overrides={"model.size": "tiny"})
    # naming the model as well is the way to pick another size
    cfg = compose(
        "crema", "av", recipe=recipe, overrides={"model.size": "tiny", "model.name": "qkf_av_tiny_deploy"}
    )
    assert cfg.model_name == "qkf_av_tiny_deploy"
