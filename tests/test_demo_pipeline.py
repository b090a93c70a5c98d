"""The demo is a table of steps (qkf_snn/demo.py): a step added to it runs in order and, when its
result is a check that failed, fails the demo. The pipeline itself runs end to end in
tests/cli/test_demo.py."""

from __future__ import annotations

import pytest

from qkf_snn import demo

SUMMARY = {
    "models": {m: {"val_acc": 0.5} for m in demo.MODALITIES},
    "profile": {"energy_model": "x"},
    "nir": {"passed": True},
}


def test_the_steps_fill_every_part_of_the_summary_once():
    keys = [step.key for step in demo.STEPS if step.key]
    assert len(keys) == len(set(keys))
    assert {("models", m) for m in demo.MODALITIES} | {("profile",), ("nir",)} <= set(keys)


def _summary(**checks: bool) -> dict:
    """Results for every step; the one-key steps but the profile are checks (passing unless given)."""
    after_profile = [step.key[0] for step in demo.STEPS if len(step.key) == 1 and step.key != ("profile",)]
    return {
        **SUMMARY,
        **{key: {"passed": checks.get(key, True), "detail": 3} for key in [*after_profile, *checks]},
    }


@pytest.mark.parametrize(("nir", "toy", "failed"), [
    (True, True, []), (False, True, ["nir"]), (True, False, ["toy"]), (False, False, ["nir", "toy"]),
])  # fmt: skip
def test_a_failed_check_of_any_step_fails_the_demo(monkeypatch, nir, toy, failed):
    """A step appended to the table is a check like the NIR one."""
    monkeypatch.setattr(demo, "STEPS", [*demo.STEPS, demo.Step("toy check", lambda s: None, ("toy",))])
    assert demo.failed_checks(_summary(nir=nir, toy=toy)) == failed


def test_results_without_a_verdict_are_not_checks():
    assert demo.failed_checks(_summary()) == []
    assert demo.failed_checks({**_summary(), "profile": {"passed": None}}) == []
