"""The repository's own CI workflow (.github/workflows/check.yml): valid for GitHub, and
running what it says it runs. (grade.yml, the learners' workflow, is checked in test_grade.py.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.katas import ROOT

CHECK = ROOT / ".github" / "workflows" / "check.yml"


def test_check_workflow_is_valid_against_the_github_workflow_schema():
    done = subprocess.run(
        [
            shutil.which("check-jsonschema", path=Path(sys.executable).parent)
            or "check-jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(CHECK),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_workflow_runs_make_check_on_every_supported_python():
    text = CHECK.read_text()
    for needed in (
        "make check",
        "make setup data",
        "download.pytorch.org/whl/cpu",
        "cache: pip",
        "bubblewrap",
        "push:",
        "pull_request:",
    ):
        assert needed in text, f"check.yml should have {needed!r}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest = pyproject.split('requires-python = ">=')[1].split('"')[0]
    assert f'"{oldest}"' in text, (
        f"check.yml's matrix should start at the oldest supported Python, {oldest}"
    )
