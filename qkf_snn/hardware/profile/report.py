"""Profile reports on disk: ``profile.json`` (the document of :mod:`.document`, schema in schema.md),
``profile.md`` (:mod:`.render`) and the PNG plots, written atomically, and the JSON read back with its
schema checked. The renderers read only the document, so a saved report can be re-rendered later."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.conventions import CountOptions
from qkf_snn.hardware.profile.document import SCHEMA, SCHEMA_VERSION, build_report
from qkf_snn.hardware.profile.records import Profile
from qkf_snn.hardware.profile.render import markdown
from qkf_snn.hardware.profile.terminal import rich_tables
from qkf_snn.io import atomic_write_bytes, writing

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "build_report",
    "load_report",
    "markdown",
    "rich_tables",
    "write_report",
]


def write_json(doc: dict, path: Path) -> Path:
    atomic_write_bytes(path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())
    return path


def load_report(path: str | Path) -> dict:
    """Read a profile JSON, checking its schema and version."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable profile JSON ({err})") from None
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        found = f"{doc.get('schema')} v{doc.get('schema_version')}"
        raise UserError(f"{path}: expected schema {SCHEMA} v{SCHEMA_VERSION}, got {found}")
    return doc


def write_report(
    profile: Profile,
    out_dir: str | Path,
    options: CountOptions | None = None,
    meta: dict[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``profile.json``, ``profile.md`` and (optionally) the PNG plots into ``out_dir``."""
    out = Path(out_dir)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    doc = build_report(profile, options, meta)
    paths = {"json": write_json(doc, out / "profile.json")}
    paths["markdown"] = out / "profile.md"
    atomic_write_bytes(paths["markdown"], markdown(doc).encode())
    if plots:
        from qkf_snn.hardware.profile.plots import write_plots

        paths.update(write_plots(doc, out))
    return paths
