"""Small synthetic raw sets and their caches, generated once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qkf_snn.datasets import prepare, synthesize

# Tiny features keep every prepare well under a second.
SMALL = dict(time_steps=4, image_size=32, n_mels=32, audio_width=16, progress=False)
CREMA_KNOBS = dict(actors=5, seconds=1.0, fps=6)
AVE_KNOBS = dict(classes=4, seconds=2.0, fps=6, imbalance=1.0)
US8K_KNOBS = dict(classes=5, seconds=0.5, slices=3)
FOLDER_KNOBS = dict(classes=3, seconds=0.5, fps=6)


@pytest.fixture(scope="session")
def crema_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("crema", tmp_path_factory.mktemp("crema") / "raw", clips=36, seed=3, **CREMA_KNOBS)


@pytest.fixture(scope="session")
def crema_cache(crema_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crema-cache") / "cache"
    prepare("crema", crema_raw, out, clip_seconds=1.0, **SMALL)
    return out


@pytest.fixture(scope="session")
def ave_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("ave", tmp_path_factory.mktemp("ave") / "raw", clips=20, seed=5, **AVE_KNOBS)


@pytest.fixture(scope="session")
def ave_cache(ave_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ave-cache") / "cache"
    prepare("ave", ave_raw, out, clip_seconds=2.0, **SMALL)
    return out


@pytest.fixture(scope="session")
def us8k_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(
        "urbansound8k-av", tmp_path_factory.mktemp("us8k") / "raw", clips=30, seed=7, **US8K_KNOBS
    )


@pytest.fixture
def crema_copy(crema_raw: Path, tmp_path: Path) -> Path:
    """A private copy of the CREMA-D raw set that a test may damage."""
    return Path(shutil.copytree(crema_raw, tmp_path / "crema-raw"))


@pytest.fixture
def ave_copy(ave_raw: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(ave_raw, tmp_path / "ave-raw"))


@pytest.fixture
def us8k_copy(us8k_raw: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(us8k_raw, tmp_path / "us8k-raw"))


@pytest.fixture(scope="session")
def small() -> dict:
    """Feature settings small enough that a prepare takes well under a second."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def knobs() -> dict[str, dict]:
    """The synth knobs the session fixtures use, per dataset."""
    return {
        "crema": dict(CREMA_KNOBS),
        "ave": dict(AVE_KNOBS),
        "urbansound8k-av": dict(US8K_KNOBS),
        "folder": dict(FOLDER_KNOBS),
    }
