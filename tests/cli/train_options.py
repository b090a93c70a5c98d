"""One value per option of `qkf train`, shared by the tests that run them (test_config_options.py
in process, test_wheel.py through the `qkf` of an installed wheel)."""

from __future__ import annotations

from qkf_snn.cli import train as train_cli
from qkf_snn.cli.options import config_keys

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
    "energy_start_epoch": (["--energy-start-epoch", "3"], 3),
    "qat_bits": (["--qat-bits", "4"], 4),
    "qat_per_channel": (["--qat-per-layer"], False),
    "resume_from": (["--resume-from", "CKPT"], "CKPT"),
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


def dotted(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data[part]
    return data


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
        assert dotted(config, keys[name]) == expected, (name, keys[name])
