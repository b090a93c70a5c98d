"""One torchrun process of test_ddp.py: train, then save this rank's final weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from qkf_snn.training import compose
from qkf_snn.training.loop import train

if __name__ == "__main__":
    overrides = json.loads(sys.argv[1])
    result = train(compose("crema", "av", overrides=overrides))
    rank = int(os.environ["RANK"])
    torch.save(result.model.state_dict(), Path(overrides["run.out"]) / f"rank{rank}.pt")
