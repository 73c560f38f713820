"""The project as a built wheel (`pip install .`, not editable): it holds every file the harness
reads, and the installed harness tests and grades a checkout, run from inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.katas import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    (path,) = out.glob("gpt_katas-*.whl")
    return path


def tracked(folder: str) -> list[str]:
    listing = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in listing.stdout.split() if not p.endswith(".md")]


def test_the_wheel_holds_every_file_the_harness_and_the_data_step_read(wheel):
    inside = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in tracked("harness") if p not in inside]
    assert not missing, (
        f"the wheel lacks {missing}: list the package or its data files in "
        "pyproject.toml's [tool.setuptools] tables"
    )


def test_the_installed_harness_tests_and_grades_a_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkout = tmp_path / "checkout"
    shutil.copytree(
        ROOT,
        checkout,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "runs", "grade", "grade-class", "__pycache__", ".hypothesis"
        ),
    )
    # From katas/, `import harness` finds the installed package, not the checkout's copy.
    env = {**os.environ, "PYTHONPATH": str(site), "GPT_KATAS_IMPL": "solutions"}
    where = subprocess.run(
        [sys.executable, "-c", "import harness; print(harness.__file__)"],
        cwd=checkout / "katas",
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    kata = subprocess.run(
        [sys.executable, "-m", "harness", "--impl", "solutions", "kata", "03"],
        cwd=checkout / "katas",
        env=env,
        capture_output=True,
        text=True,
    )
    assert kata.returncode == 0, kata.stdout[-3000:] + kata.stderr[-2000:]
    grade = subprocess.run(
        [sys.executable, "-m", "harness.grade", "--impl", "solutions", "--kata", "03"],
        cwd=checkout / "katas",
        env=env,
        capture_output=True,
        text=True,
    )
    assert grade.returncode == 0 and "10 / 10 points" in grade.stdout, (
        grade.stdout[-3000:] + grade.stderr[-2000:]
    )
