"""The JSON document (schema v1), its round trip, the Markdown report and the PNG plots."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile import CountOptions, Profile, load_report, markdown, profile_model, write_report
from qkf_snn.hardware.profile.energy import CONSTANTS, ENERGY_MODELS
from qkf_snn.hardware.profile.report import SCHEMA, SCHEMA_VERSION, rich_tables
from qkf_snn.models import UniModalClassifier, create_model, recalibrate_bn


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    torch.manual_seed(0)
    model = UniModalClassifier(create_model("qkf_audio_tiny", input_size=(32, 32), time_steps=2), "audio")
    batch = model.example_batch(2)
    recalibrate_bn(model, [batch])
    prof = profile_model(model, [batch])
    out = tmp_path_factory.mktemp("report")
    options = CountOptions(first_layer="once")
    paths = write_report(prof, out, options, meta={"model_name": "qkf_audio_tiny", "split": "val"})
    return prof, paths, options


def test_json_schema_v1(written):
    prof, paths, options = written
    doc = load_report(paths["json"])
    assert doc["schema"] == SCHEMA and doc["schema_version"] == SCHEMA_VERSION == 1
    p = doc["protocol"]
    assert (p["samples"], p["batches"], p["time_steps"]) == (2, 1, 2)
    assert p["options"] == {"first_layer": "once", "head": "mac", "integer_inputs": "ac_count"}
    assert p["model_name"] == "qkf_audio_tiny" and p["split"] == "val" and p["audited"]
    assert set(doc["totals"]["conventions"]) == {"paper", "exact", "neurobench", "spikingjelly", "ann"}
    assert set(doc["energy"]["models"]) == set(ENERGY_MODELS)
    for key, c in doc["energy"]["constants"].items():  # every constant carries source and basis
        assert c["source"] and c["basis"] and c["value"] == CONSTANTS[key].value
    assert {t["source"] for t in doc["break_even"]["thresholds"]} >= {"Davidson & Furber 2021"}
    # measurements round-trip into the same Profile
    assert Profile.from_dict(doc["measurements"]).to_dict() == prof.to_dict()
    assert len(doc["counts"]) == len(prof.synapses) + len(prof.products)
    json.loads(paths["json"].read_text())  # strict JSON: no NaN / Infinity


def test_markdown_and_plots(written):
    prof, paths, _ = written
    text = paths["markdown"].read_text()
    assert text == markdown(load_report(paths["json"]))
    for name in [s.name for s in prof.synapses] + [n.name for n in prof.neurons]:
        assert f"| {name} |" in text
    assert "every convention side by side" in text and "Break-even" in text
    for line in text.splitlines():  # an unescaped '|' inside a cell would break the table
        if line.startswith("| paper |") or line.startswith("| exact |"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7
            # the scope column: the paper rule's spike×spike products are split-level, the rest not
            assert ("split-level" in line) == line.startswith("| paper |"), line
    for key in ("firing_rates", "energy_per_layer"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert len(rich_tables(load_report(paths["json"]))) >= 4


def test_load_report_rejects_other_files(tmp_path):
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"schema": "something", "schema_version": 3}))
    with pytest.raises(UserError, match=r"x\.json: expected schema qkf-snn\.profile v1"):
        load_report(other)
    with pytest.raises(UserError, match="not a readable profile JSON"):
        load_report(tmp_path / "missing.json")


# --- the report files, byte for byte ------------------------------------------------------------------
# data/profile_report holds a fixed profile (a tiny audio QKFormer with SSA products, plus one made-up
# unattributed row whose reason contains a '|') and the report files the single-module report.py wrote
# for it before it was split into document / render / terminal / report: the split changed no byte.
# Since then (issue 16) the files say which precision the energy assumes: the protocol's
# weight_precision / arithmetic fields, energy.arithmetic, and one "Precision assumed" line each.
GOLDEN = Path(__file__).parent / "data" / "profile_report"
GOLDEN_META = {"model_name": "golden", "split": "val", "checkpoint": "best.pt"}


def _volatile(text: str) -> str:
    """The document's creation time and versions blanked (they are the only fields that may differ)."""
    return re.sub(r'"(created|qkf_snn_version|torch_version)": "[^"]*"', r'"\1": "…"', text)


@pytest.fixture
def golden_tables(monkeypatch):
    """The energy models and constants the goldens were written with (entries added since are left out
    here, so a new table entry does not change these files; a changed old one does)."""
    doc = json.loads((GOLDEN / "profile.json").read_text())
    for table, kept in ((ENERGY_MODELS, doc["energy"]["models"]), (CONSTANTS, doc["energy"]["constants"])):
        for key in set(table) - set(kept):
            monkeypatch.delitem(table, key)
    assert set(ENERGY_MODELS) == set(doc["energy"]["models"]) and set(CONSTANTS) == set(
        doc["energy"]["constants"]
    )
    return json.loads((GOLDEN / "measurements.json").read_text())


@pytest.mark.parametrize("variant", ["", "-audited", "-unaudited"])
def test_report_files_are_byte_identical_to_the_golden_ones(variant, golden_tables, tmp_path):
    data = golden_tables
    if variant:  # the other two forms of the Unattributed section
        data = {**data, "unattributed": [], "audited": variant == "-audited"}
    paths = write_report(
        Profile.from_dict(data), tmp_path, CountOptions(first_layer="once"), GOLDEN_META, plots=False
    )
    assert paths["markdown"].read_bytes() == (GOLDEN / f"profile{variant}.md").read_bytes()
    if not variant:
        assert _volatile(paths["json"].read_text()) == (GOLDEN / "profile.json").read_text()
        console = Console(file=io.StringIO(), width=160, color_system=None, force_terminal=False)
        for table in rich_tables(load_report(paths["json"])):
            console.print(table)
        assert console.file.getvalue() == (GOLDEN / "terminal.txt").read_text()
