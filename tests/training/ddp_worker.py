"""One torchrun process of test_ddp.py: train, then save this rank's final weights (and the energy
term's state when the overrides ask for one)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from qkf_snn.hardware.profile.term import energy_terms
from qkf_snn.training import compose
from qkf_snn.training.loop import train

if __name__ == "__main__":
    overrides = json.loads(sys.argv[1])
    cfg = compose("crema", "av", overrides=overrides)
    terms = energy_terms(cfg)
    result = train(cfg, terms=terms)
    rank = int(os.environ["RANK"])
    saved = {"model": result.model.state_dict(), "terms": [t.state_dict() for t in terms]}
    torch.save(saved, Path(overrides["run.out"]) / f"rank{rank}.pt")
