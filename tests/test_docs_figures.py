"""The figures README.md and docs/grading.md quote (spec counts, points, presets) are written
by scripts/docs_figures.py from the manifest, the points and the configs: a change to any of
them without rerunning it fails here, saying so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import docs_figures  # noqa: E402


def test_the_documented_figures_are_the_current_ones():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_figures.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.strip() or "run python scripts/docs_figures.py"


def test_every_block_is_in_the_docs_and_each_once():
    names = [
        m["name"]
        for doc in docs_figures.DOCS
        for m in docs_figures.BLOCK.finditer((ROOT / doc).read_text())
    ]
    assert sorted(names) == sorted(docs_figures.RENDER), names


def test_a_stale_block_is_named_with_the_command_to_run():
    text = "a <!-- figures:presets -->`PRESET=tiny|small`<!-- /figures:presets --> b"
    new, changed = docs_figures.rewrite(text, "README.md")
    assert changed == ["presets"] and "nanogpt-cpu" in new and new.startswith("a <!-- ")
    again, unchanged = docs_figures.rewrite(new, "README.md")
    assert again == new and unchanged == []


def test_the_figures_follow_the_manifest_and_the_points():
    specs = docs_figures.spec_counts()
    assert f"{len(specs)} katas" in docs_figures.grade_line()
    assert f"{sum(specs.values()):,} specs" in docs_figures.grade_line()
    first = next(iter(specs))
    assert f"{specs[first]}/{specs[first]}" in docs_figures.make_test_example()
    trained = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'scripts');"
            "import run_settings; print(' '.join(run_settings.presets()))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"GPT_KATAS_IMPL": "solutions", "PATH": ""},
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert trained.stdout.split() == docs_figures.presets(), "docs_figures.presets() is train's"
