"""The package works when installed: a wheel built from this checkout, installed in a fresh venv
outside the repository, runs `qkf models`, `qkf data synth`/`prepare` and `qkf train` on the shipped
default recipe from a folder outside the repository, with every `qkf train` option reaching its key.

The fresh venv reuses this environment's installed dependencies through a .pth line (nothing is
downloaded); only the wheel's own files are installed into it. The wheel is built with uv (`make`
installs it; the test is skipped, visibly, where there is none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from train_options import VALUES, assert_reached, run_options  # tests/cli

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
# QAT fine-tunes a float checkpoint, so this run from scratch cannot take its options; its own run
# through the installed `qkf` is in tests/hardware/test_quant_export.py
# (test_qat_fine_tunes_a_checkpoint_and_exports_exactly_what_it_trained).
NOT_IN_THIS_RUN = {"qat_bits", "qat_per_channel", "resume_from"}


def _uv() -> str | None:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), REPO / ".tools" / "bin" / "uv"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def _run(args: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv outside the repository with only the wheel installed into it."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv not found (make installs it into .tools/): cannot build the wheel offline")
    root = tmp_path_factory.mktemp("wheel")
    _run([uv, "build", "--wheel", "--offline", "--quiet", "--out-dir", root / "dist", REPO], cwd=REPO)
    (wheel,) = (root / "dist").glob("qkf_snn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"qkf_snn", wheel.name.split("-py3")[0] + ".dist-info"}
    recipes = {p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert {"crema_av.yaml", "demo/crema_av.yaml"} <= recipes
    assert {f"qkf_snn/configs/{r}" for r in recipes} <= set(names)  # every recipe, no tests or runs

    env_dir = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=root)
    python = env_dir / "bin" / "python"
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip()
    )
    # this environment's dependencies; a .pth line adds the folder only, not the editable qkf_snn it links
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([uv, "pip", "install", "--offline", "--no-deps", "--quiet", "--python", python, wheel], cwd=root)
    where = _run([python, "-c", "import qkf_snn; print(qkf_snn.__file__)"], cwd=root).stdout.strip()
    assert Path(where).is_relative_to(site)  # the installed wheel, not this checkout
    return env_dir


@pytest.mark.slow
def test_the_installed_wheel_runs_models_data_and_train_on_the_recipes(venv, tmp_path):
    qkf = venv / "bin" / "qkf"
    work = tmp_path / "work"  # outside the repository
    work.mkdir()
    assert not work.resolve().is_relative_to(REPO)

    listed = _run([qkf, "models"], cwd=work).stdout
    assert "qkf_av_tiny" in listed and "qkf_av_tiny_deploy" in listed

    _run([qkf, "data", "synth", "crema", "--out", "raw", "--clips", "18", "--set", "seconds=1.0"], cwd=work)
    _run([qkf, "data", "prepare", "crema", "--raw", "raw", "--out", "cache", "--time-steps", "4",
          "--image-size", "8", "--n-mels", "16", "--audio-width", "8", "--clip-seconds", "1.0",
          "--no-progress"], cwd=work)  # fmt: skip

    # the default recipe (configs/crema_av.yaml, shipped in the wheel) under every option of qkf train
    values = {k: v for k, v in VALUES.items() if k not in NOT_IN_THIS_RUN}
    fill = {"DIR": "cache", "OUT": "runs"}
    _run([qkf, *run_options(values, fill)], cwd=work)
    run = work / "runs" / "a"
    config = yaml.safe_load((run / "config.yaml").read_text())
    site = venv.resolve()
    assert Path(config["recipe"]).resolve() == next(site.rglob("qkf_snn/configs/crema_av.yaml")).resolve()
    assert_reached(config, values, fill)
    assert (run / "best.pt").is_file() and (run / "results.json").is_file()
