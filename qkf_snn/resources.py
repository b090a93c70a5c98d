"""Data files that ship inside the package, found the same way in a wheel and in a source checkout.

The recipes live in ``qkf_snn/configs/`` (the repository's top-level ``configs/`` is a link to it, so
there is one copy): ``configs/<dataset>_<modality>.yaml`` are the defaults of `qkf train`, and
``configs/demo/`` are the `qkf demo` recipes. This module imports nothing heavy, so the CLI may use it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def recipe_dir() -> Path:
    """The folder of the shipped recipes (a real folder: wheels install unzipped)."""
    return Path(str(files("qkf_snn") / "configs"))
