"""`qkf train --help` draws its help without importing torch, so some lists there are written out by hand:
these tests keep them equal to the tables they name."""

from __future__ import annotations

import re

from qkf_snn.models.neurons import NEURONS


def test_qkf_train_help_names_every_neuron_kind():
    """The CLI does not import torch to draw its help, so ``--neuron``'s help is written out: it must
    name every kind of the table (a new kind updates it)."""
    import typer.main

    from qkf_snn.cli.main import app

    train_command = typer.main.get_command(app).commands["train"]
    (option,) = [p for p in train_command.params if p.name == "neuron"]
    named = set(re.findall(r"\w+", option.help))
    assert set(NEURONS) <= named, f"--neuron help {option.help!r} misses {set(NEURONS) - named}"
